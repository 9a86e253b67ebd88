from django.apps import AppConfig


class BalancesConfig(AppConfig):
    name = "balances"
    verbose_name = "Balances"

    def ready(self):
        from . import signals  # noqa: F401  connects the ledger's accounts_changed receiver
