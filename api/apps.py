from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"
    hooks_order = 45  # see cryptoadmin/registry.py
