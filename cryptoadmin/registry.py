"""Per-app hooks found by module name, so apps add schedules, dashboard panels and admin
alerts without editing a shared file.

- `<app>/schedules.py`: SCHEDULES = [dict(name=..., func="dotted.path", schedule_type="I",
  minutes=1, ...)]
- `<app>/dashboard.py`: `panels(request) -> list[dict(title, template, context)]` for the
  admin index, `alerts(request) -> list[dict(level, message, url)]` for a banner on every
  admin page, and `needs_person(request) -> list[dict(key, title, count, url, level)]` for the
  counts the admin home leads with (cryptoadmin/home.py).
- `<app>/health.py`: `checks() -> [{name: {"ok": bool, ...}}]` merged into /health.
- `<app>/unsettled.py`: `unsettled(wallet, opened_since) -> [ids]` of sends the books may not
  hold yet; a wallet import waits for them (ledger.imports).

An app is found by being in INSTALLED_APPS; its AppConfig's `hooks_order` places its hooks.
"""

from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from django.apps import apps
from django.conf import settings

# Apps without a `hooks_order` attribute come after those with one, in INSTALLED_APPS order.
LAST = 1000


def project_apps() -> list:
    """The installed apps this repository ships (a package at its top level), in their
    `hooks_order`: the order of dashboard panels, banners, health checks and schedules.
    Third-party apps (django_q, axes, auditlog...) live elsewhere and are left out."""
    root = Path(settings.BASE_DIR).resolve()
    configs = apps.get_app_configs()  # INSTALLED_APPS order
    ours = [c for c in configs if Path(c.path).resolve().parent == root]
    return sorted(ours, key=lambda c: getattr(c, "hooks_order", LAST))


def project_app_names() -> list[str]:
    return [config.name for config in project_apps()]


def app_modules(name: str):
    for app in project_app_names():
        dotted = f"{app}.{name}"
        if find_spec(dotted) is not None:
            yield import_module(dotted)


def collect(module_name: str, attr: str, *args):
    """Concatenate what every app's `module_name.attr(*args)` returns (or its list value)."""
    out = []
    for module in app_modules(module_name):
        value = getattr(module, attr, None)
        if value is None:
            continue
        out.extend(value(*args) if callable(value) else value)
    return out
