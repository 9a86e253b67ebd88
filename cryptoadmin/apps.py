from django.apps import AppConfig


class CryptoadminConfig(AppConfig):
    name = "cryptoadmin"
    verbose_name = "cryptoadmin"

    def ready(self):
        from . import checks, schedules, throttle  # noqa: F401  registers checks, post_migrate and login signals
