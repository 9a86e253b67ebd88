"""Real services for the suite: a throwaway PostgreSQL cluster and a regtest bitcoind,
started once per session on free loopback ports and stopped by process id at the end."""
import os
import sys
from pathlib import Path

import pytest

from cryptoadmin.localservices import LocalBitcoind, LocalPostgres

REPO = Path(__file__).resolve().parent.parent
TEST_DB_NAME = "test_cryptoadmin"


@pytest.fixture(scope="session")
def postgres():
    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, postgres):
    from django.conf import settings

    settings.DATABASES["default"].update(
        ENGINE="django.db.backends.postgresql", HOST="127.0.0.1", PORT=str(postgres.port),
        USER="postgres", PASSWORD="", NAME="cryptoadmin",
    )


@pytest.fixture(scope="session")
def node():
    """The shared regtest node, with mature coins. Tests must not assume its wallet balance."""
    server = LocalBitcoind().start()
    server.generate(110)
    yield server
    server.stop()


@pytest.fixture
def fresh_node():
    """A node of the test's own, for tests whose assertions depend on the wallet's balance."""
    started = []

    def start(**kwargs):
        server = LocalBitcoind(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def child_env(postgres):
    """Environment for a child Django process (a broadcaster, a second web worker) that must
    see the same test database as this test."""
    from django.db import connection

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings_test",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{postgres.port}/{connection.settings_dict['NAME']}",
        PYTHONPATH=str(REPO),
    )
    return env


PYTHON = sys.executable


def make_currency(code="BTC", **kwargs):
    from ledger.models import Currency

    kwargs.setdefault("crediting_threshold", 2)
    kwargs.setdefault("polling_threshold", 4)
    return Currency.objects.create(code=code, name=code, **kwargs)


def make_wallet(currency, server, name=None, **kwargs):
    from ledger.models import Wallet

    return Wallet.objects.create(
        name=name or f"{currency.code}-{server.rpc_port}", currency=currency, backend="bitcoind",
        backend_settings={"url": server.url}, **kwargs,
    )


@pytest.fixture
def btc(db):
    return make_currency("BTC")


@pytest.fixture
def wallet(btc, node):
    return make_wallet(btc, node)


@pytest.fixture
def operator(db, django_user_model):
    return django_user_model.objects.create_user("operator", password="pw-operator", is_staff=True)


@pytest.fixture
def viewer(db, django_user_model):
    return django_user_model.objects.create_user("viewer", password="pw-viewer", is_staff=True)


@pytest.fixture
def outsider(db, django_user_model):
    return django_user_model.objects.create_user("outsider", password="pw-outsider", is_staff=False)


@pytest.fixture
def superuser(db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root")


def grant(user, *codenames):
    """Give a user permissions by 'app_label.codename'."""
    from django.contrib.auth.models import Permission

    for full in codenames:
        app_label, codename = full.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    # Permission caches live on the instance.
    for attr in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)
    return user


@pytest.fixture
def balance_cache():
    """This process's balance cache, fresh for the test; reset after it, which also closes its
    LISTEN connection (an open one would keep the test database from being dropped)."""
    from balances.cache import get_cache, reset_cache

    reset_cache()
    yield get_cache()
    reset_cache()
