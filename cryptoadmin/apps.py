from django.apps import AppConfig


class CryptoadminConfig(AppConfig):
    name = "cryptoadmin"
    verbose_name = "cryptoadmin"

    def ready(self):
        from . import checks, schedules  # noqa: F401  registers system checks and the post_migrate handler
