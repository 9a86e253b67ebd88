from django.apps import AppConfig


class CryptoadminConfig(AppConfig):
    name = "cryptoadmin"
    verbose_name = "cryptoadmin"
    hooks_order = 50  # see registry.py

    def ready(self):
        from . import audit

        audit.register()
