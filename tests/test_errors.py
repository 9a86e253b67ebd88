"""One project exception root: every domain error derives from
cryptoadmin.errors.CryptoadminError, keeping its builtin base for existing callers."""

import importlib
import pkgutil

import pytest

from cryptoadmin.errors import CryptoadminError
from cryptoadmin.registry import project_app_names

# Not refusals, so never under the root, where a domain handler could catch them:
NOT_DOMAIN = {
    "cryptoadmin.faults.InjectedFault",  # a simulated crash
    "ops.management.commands.serve._Stop",  # SIGTERM delivered to serve's loop
}


def _project_exceptions():
    found = {}
    for app in project_app_names():  # every app of this repository in INSTALLED_APPS
        package = importlib.import_module(app)
        for info in pkgutil.walk_packages(package.__path__, f"{app}."):
            if ".migrations" in info.name:
                continue
            try:
                module = importlib.import_module(info.name)
            except Exception:  # e.g. a module that needs a service not running here
                continue
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseException)
                    and value.__module__ == info.name
                ):
                    found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_it_finds_the_domain_errors_it_checks():
    names = set(_project_exceptions())
    for expected in (
        "ledger.backends.base.BackendError",
        "ledger.money.AmountError",
        "ledger.services.LedgerError",
        "balances.cache.LoadTimeout",
        "broadcasts.errors.OutgoingError",
        "cryptoadmin.errors.CloseRefused",
        "balances.auth.Denied",
    ):
        assert expected in names


def test_it_roots_every_domain_error_in_one_class():
    strays = [
        name
        for name, cls in _project_exceptions().items()
        if name not in NOT_DOMAIN and not issubclass(cls, CryptoadminError)
    ]
    assert strays == []


def test_it_keeps_the_builtin_bases():
    from balances.cache import BalanceLoadError, UnknownUser
    from broadcasts.errors import OutgoingError
    from cryptoadmin.errors import CloseRefused
    from ledger.money import AmountError
    from ledger.services import LedgerError

    for cls in (AmountError, LedgerError, OutgoingError, CloseRefused):
        assert issubclass(cls, ValueError)
    assert issubclass(BalanceLoadError, RuntimeError) and issubclass(UnknownUser, LookupError)


@pytest.mark.parametrize("name", sorted(NOT_DOMAIN))
def test_it_leaves_injected_faults_outside(name):
    module, _, cls = name.rpartition(".")
    assert not issubclass(getattr(importlib.import_module(module), cls), CryptoadminError)
