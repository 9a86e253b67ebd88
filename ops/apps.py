from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Running cryptoadmin as a service: metrics, alerts, configuration checks, `serve`."""

    name = "ops"
    verbose_name = "operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  registers the configuration checks
