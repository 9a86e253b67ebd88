from django.apps import AppConfig


class BroadcastsConfig(AppConfig):
    name = "broadcasts"
    verbose_name = "Broadcasts"
    hooks_order = 30  # see cryptoadmin/registry.py
