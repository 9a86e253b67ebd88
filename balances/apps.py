from django.apps import AppConfig


class BalancesConfig(AppConfig):
    name = "balances"
    verbose_name = "Balances"
    hooks_order = 40  # see cryptoadmin/registry.py

    def ready(self):
        from . import signals  # noqa: F401  connects the ledger's accounts_changed receiver
