"""Real services for the suite: a throwaway PostgreSQL cluster and a regtest bitcoind,
started once per session on free loopback ports and stopped by process id at the end."""
import os
import sys
from pathlib import Path

import pytest

from cryptoadmin.localservices import LocalBitcoind, LocalPostgres

pytest_plugins = ["tests.browser"]  # browser/page fixtures, defined once for the session

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
    # The browser fixture allows Django's async-unsafe calls in this process only: a child
    # (a production server under check --deploy, a broadcaster) runs with Django's own guard.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings_test",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{postgres.port}/{connection.settings_dict['NAME']}",
        PYTHONPATH=str(REPO),
    )
    return env


PYTHON = sys.executable


def wait_until(predicate, timeout=20.0, interval=0.1, what="condition"):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def two_nodes(fresh_node):
    """(ours, outside): our wallet's node and an outside-world node peered on loopback.

    Outside mines and pays us, so coins really arrive from elsewhere and our node's
    balance moves the way the books expect."""
    outside = fresh_node()
    ours = fresh_node(peer=outside)
    outside.generate(101)
    wait_until(lambda: ours.rpc("getblockcount") == 101, what="our node to sync")
    return ours, outside


def pay_from_outside(ours, outside, address, amount: str, mine: int = 0):
    """Outside pays `address` on our node; waits until our wallet sees it."""
    txid = outside.rpc("sendtoaddress", address, amount)
    if mine:
        outside.generate(mine)
    height = outside.rpc("getblockcount")
    wait_until(lambda: ours.rpc("getblockcount") == height, what="block relay")

    def seen():
        try:
            return ours.rpc("gettransaction", txid)
        except Exception:
            return None

    wait_until(seen, what=f"tx {txid} on our node")
    return txid


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


def credit_user(wallet, user_id, amount):
    """Put `amount` base units on a user's 201 from the wallet's 910 import account: coins the
    node already holds (mined to it) become the user's in the books."""
    from ledger import services
    from ledger.models import Account

    account = services.user_account(user_id, wallet.currency, Account.Code.BALANCE)
    services.post(services.system_account(wallet, Account.Code.IMPORT), account, amount, "import")
    return account


def funded_wallet(currency, server, user_id="alice", blocks=120):
    """A wallet on `server` (a fresh node) whose whole mature balance is imported to a user's 201.
    Nothing may mine on that node afterwards: maturing coinbases would change its balance."""
    server.generate(blocks)
    wallet = make_wallet(currency, server)
    balance = wallet.get_backend().get_balance(0)
    return wallet, credit_user(wallet, user_id, balance)


@pytest.fixture
def blockio():
    """A loopback stand-in for block.io's v2 API (tests/blockio_server.py), stopped at the end."""
    from tests.blockio_server import FakeBlockIo

    server = FakeBlockIo().start()
    yield server
    server.stop()


@pytest.fixture
def blockio_wallet(db, blockio):
    from ledger.models import Wallet

    currency = make_currency("BTC", crediting_threshold=2, polling_threshold=4, network="testnet")
    return Wallet.objects.create(name="block.io BTC", currency=currency, backend="blockio", backend_settings={
        "api_key": blockio.api_key, "pin": blockio.pin, "base_url": blockio.base_url, "network": "BTCTEST"})


@pytest.fixture
def balance_cache():
    """This process's balance cache, fresh for the test; reset after it, which also closes its
    LISTEN connection (an open one would keep the test database from being dropped)."""
    from balances.cache import get_cache, reset_cache

    reset_cache()
    yield get_cache()
    reset_cache()


# Members of the real role groups (tests/support.py), for tests written as that role acts.
@pytest.fixture
def viewer_member(db):
    from tests.support import member_of

    return member_of("Viewer")


@pytest.fixture
def operator_member(db):
    from tests.support import member_of

    return member_of("Operator")


@pytest.fixture
def admin_member(db):
    from tests.support import member_of

    return member_of("Admin")


@pytest.fixture(autouse=True)
def _force_login_signs_in_with_a_second_factor(monkeypatch):
    """`client.force_login(user)` stands for a full sign-in: password and second factor. The test
    settings require a second factor for staff (OTP_REQUIRED follows DEBUG, which is off), so the
    session is marked verified with a confirmed device of the user's own. Tests of the sign-in
    itself go through the real login page, or pass `second_factor=False`."""
    from django.test import Client

    original = Client.force_login

    def force_login(self, user, backend=None, second_factor=True):
        original(self, user, backend)
        if second_factor:
            verify_session(self, user)

    monkeypatch.setattr(Client, "force_login", force_login)


def verify_session(client, user):
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice

    device, _ = StaticDevice.objects.get_or_create(user=user, name="test sign-in", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def totp_device(user):
    """A confirmed TOTP authenticator for `user`, and a function giving its current code."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    return device, lambda: f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
