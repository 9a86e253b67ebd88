from django.apps import AppConfig


class CryptoadminConfig(AppConfig):
    name = "cryptoadmin"
    verbose_name = "cryptoadmin"

    def ready(self):
        from . import audit, checks, schedules  # noqa: F401  registers checks and post_migrate

        audit.register()
