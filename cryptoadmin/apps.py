from django.apps import AppConfig


class CryptoadminConfig(AppConfig):
    name = "cryptoadmin"
    verbose_name = "cryptoadmin"

    def ready(self):
        from . import audit, checks, schedules  # noqa: F401  registers checks, post_migrate and audited models
