from django.apps import AppConfig


class CryptoadminConfig(AppConfig):
    name = "cryptoadmin"
    verbose_name = "cryptoadmin"

    def ready(self):
        from . import audit

        audit.register()
