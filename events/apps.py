from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The outbox of events the product hears about, its feed and its webhooks."""

    name = "events"
    verbose_name = "Events and webhooks"
    default_auto_field = "django.db.models.BigAutoField"
    hooks_order = 45  # see cryptoadmin/registry.py

    def ready(self):
        # The rows of ledger.outbox.emit, and the deposit events of ledger's deposits_changed.
        from . import deposits, outbox  # noqa: F401
