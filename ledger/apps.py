from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger"
    hooks_order = 20  # see cryptoadmin/registry.py
