from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Running cryptoadmin as a service: metrics, alerts, configuration checks, `serve`."""

    name = "ops"
    verbose_name = "operations"
    default_auto_field = "django.db.models.BigAutoField"
    # First on the admin home: the overview panels (currencies, wallets, deposits, scheduler).
    hooks_order = 10

    def ready(self):
        # The configuration checks, and the scheduler's pre_save and post_migrate receivers.
        from . import checks, deploy_checks, scheduler  # noqa: F401
