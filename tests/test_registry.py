"""The per-app hooks (cryptoadmin/registry.py) find the project's apps in INSTALLED_APPS."""

from django.apps import apps
from django.test import RequestFactory

from cryptoadmin import registry


def test_it_lists_the_project_apps_of_installed_apps_in_their_panel_order():
    # Third-party apps (django_q, axes, auditlog...) are installed but are not this project's.
    assert registry.project_app_names() == [
        "ops",
        "ledger",
        "broadcasts",
        "balances",
        "events",
        "api",
        "cryptoadmin",
    ]


def test_it_follows_installed_apps_instead_of_a_list_of_its_own(monkeypatch):
    installed = apps.get_app_configs()
    monkeypatch.setattr(
        apps, "get_app_configs", lambda: [c for c in installed if c.label != "balances"]
    )
    assert "balances" not in registry.project_app_names()
    assert [m.__name__ for m in registry.app_modules("dashboard")] == [
        "ops.dashboard",
        "ledger.dashboard",
        "broadcasts.dashboard",
        "events.dashboard",
    ]


def test_it_puts_the_overview_panels_first_on_the_admin_home(db, superuser):
    request = RequestFactory().get("/admin/")
    request.user = superuser
    titles = [panel["title"] for panel in registry.collect("dashboard", "panels", request)]
    assert titles[:4] == [
        "Currencies",
        "Wallets and nodes",
        "Deposits per hour, last 24 hours",
        "Scheduler",
    ]
