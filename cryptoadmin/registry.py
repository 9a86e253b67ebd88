"""Per-app hooks found by module name, so apps add schedules, dashboard panels and admin
alerts without editing a shared file.

- `<app>/schedules.py`: SCHEDULES = [dict(name=..., func="dotted.path", schedule_type="I",
  minutes=1, ...)]
- `<app>/dashboard.py`: `panels(request) -> list[dict(title, template, context)]` for the
  admin index, and `alerts(request) -> list[dict(level, message, url)]` for a banner on
  every admin page.
- `<app>/health.py`: `checks() -> [{name: {"ok": bool, ...}}]` merged into /health.
"""

from importlib import import_module
from importlib.util import find_spec

PROJECT_APPS = (
    "cryptoadmin",
    "ledger",
    "broadcasts",
    "balances",
    "ops",
)  # dashboard panels in this order


def app_modules(name: str):
    for app in PROJECT_APPS:
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
