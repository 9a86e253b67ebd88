"""Real services for the suite: a throwaway PostgreSQL cluster and a regtest bitcoind,
started once per session on free loopback ports and stopped by process id at the end."""

import os
import tempfile

import pytest

from devtools.localservices import LocalBitcoind, LocalPostgres
from tests.support import (
    REPO,
    blockio_wallet_on,
    ensure_roles,
    make_currency,
    make_wallet,
    member_of,
    offline_wallet,
    verify_session,
    wait_until,
)

# The suite's longest tests (about 30-70 s each). Each xdist worker starts with one of them, so
# none begins near the end of the run and holds the suite up alone: worksteal hands each
# worker one contiguous block of the (shuffled) collection, and steals only from the ends.
LONGEST = (
    "test_it_leaves_no_process_behind_after_ctrl_c_ten_times_in_a_row",
    "test_it_runs_on_two_web_workers_and_two_clusters_with_one_database",
    "test_it_keeps_the_invariants_through_a_soak_on_postgresql",
    "test_it_keeps_the_invariants_through_a_soak_on_sqlite",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    slow = [item for name in LONGEST for item in items if item.name == name]
    if workers < 2 or not slow:
        return
    rest = [item for item in items if item not in slow]
    size = len(items) // workers  # each worker's block, as the scheduler cuts it
    blocks = [[] for _ in range(workers)]
    for n, item in enumerate(slow):
        blocks[n % workers].append(item)
    for block in blocks:
        while len(block) < size and rest:
            block.append(rest.pop(0))
    items[:] = [item for block in blocks for item in block] + rest


pytest_plugins = ["tests.browser"]  # browser/page fixtures, defined once for the session


@pytest.fixture(scope="session")
def postgres():
    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, postgres):
    from django.conf import settings

    settings.DATABASES["default"].update(
        ENGINE="django.db.backends.postgresql",
        HOST="127.0.0.1",
        PORT=str(postgres.port),
        USER="postgres",
        PASSWORD="",
        NAME="cryptoadmin",
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
        DJANGO_SETTINGS_MODULE="devtools.settings_test",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{postgres.port}/{connection.settings_dict['NAME']}",
        PYTHONPATH=str(REPO),
        # A listener child binds it: one per test, so parallel tests never share one.
        WALLETNOTIFY_SOCKET=os.path.join(tempfile.mkdtemp(prefix="wn-"), "walletnotify.sock"),
    )
    return env


@pytest.fixture
def two_nodes(fresh_node):
    """(ours, outside): our wallet's node and an outside-world node peered on loopback.

    Outside mines and pays us, so coins really arrive from elsewhere and our node's
    balance moves the way the books expect."""
    outside = fresh_node()
    ours = fresh_node(peer=outside)
    outside.generate(101)
    # P2P sync of 101 blocks takes seconds on a quiet machine and far longer on a loaded CI box.
    wait_until(lambda: ours.rpc("getblockcount") == 101, timeout=90, what="our node to sync")
    return ours, outside


@pytest.fixture
def btc(db):
    return make_currency("BTC")


@pytest.fixture
def wallet(btc, node):
    return make_wallet(btc, node)


@pytest.fixture
def db_wallet(btc):
    """A BTC wallet row whose node is nowhere, for tests that need only the database."""
    return offline_wallet(btc)


@pytest.fixture
def roles(db):
    """The Viewer/Operator/Admin groups, whatever test flushed the database before this one."""
    ensure_roles()


# One persona per role, each a member of the real group and nothing more; `staff` is in no
# group, for tests that grant single permissions on purpose.
@pytest.fixture
def viewer(roles):
    return member_of("Viewer", "viewer", password="pw-viewer")


@pytest.fixture
def operator(roles):
    return member_of("Operator", "operator", password="pw-operator")


@pytest.fixture
def admin(roles):
    return member_of("Admin", "admin", password="pw-admin")


@pytest.fixture
def staff(db, django_user_model):
    return django_user_model.objects.create_user("staff", password="pw-staff", is_staff=True)


@pytest.fixture
def outsider(db, django_user_model):
    return django_user_model.objects.create_user("outsider", password="pw-outsider", is_staff=False)


@pytest.fixture
def superuser(db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root")


@pytest.fixture
def blockio():
    """A loopback stand-in for block.io's v2 API (tests/blockio_server.py), stopped at the end."""
    from tests.blockio_server import FakeBlockIo

    server = FakeBlockIo().start()
    yield server
    server.stop()


@pytest.fixture
def blockio_wallet(db, blockio):
    currency = make_currency("BTC", crediting_threshold=2, polling_threshold=4, network="testnet")
    return blockio_wallet_on(blockio, currency)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test databases, and before they are dropped, this process's balance
    cache reset: a test that served balances without `balance_cache` leaves its LISTEN
    connection open, and PostgreSQL refuses to drop a database someone is connected to."""
    yield
    from balances.cache import reset_cache

    reset_cache()


@pytest.fixture
def balance_cache():
    """This process's balance cache, fresh for the test; reset after it, which also closes its
    LISTEN connection (an open one would keep the test database from being dropped)."""
    from balances.cache import get_cache, reset_cache

    reset_cache()
    yield get_cache()
    reset_cache()


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
