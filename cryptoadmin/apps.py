from django.apps import AppConfig


class CryptoadminConfig(AppConfig):
    name = "cryptoadmin"
    verbose_name = "cryptoadmin"

    def ready(self):
        from . import checks  # noqa: F401  registers the system checks
