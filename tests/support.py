"""Factories, fakes and waits shared by the test files (conftest.py keeps the fixtures only).

Import from here: `from tests.support import make_currency, grant, wait_until`."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger.backends import OutcomeUnknown
from ledger.backends.bitcoind import BitcoindBackend

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# A backend URL where nothing listens (the discard port): a wallet row for tests that never
# call the node; a call that slips through fails at once instead of reaching a real node.
NOWHERE_URL = "http://u:p@127.0.0.1:9"

# A production environment for a child `manage.py` or `python -c` (DEBUG off, real settings).
PRODUCTION_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
    "DEBUG": "0",
    "SECRET_KEY": "k" * 20 + "Xy9-PqR7_zT3-wV5_nB1-mL8_cD6-fG2-hJ4",
    "ALLOWED_HOSTS": "admin.example.com",
    "DATABASE_URL": "sqlite:////tmp/deploy-check.sqlite3",
    "NODE_HOSTS": "127.0.0.1",
}


# --- child processes -----------------------------------------------------------------------


def manage_process(env, *args, fault="") -> subprocess.Popen:
    """`manage.py <args>` as a child process on `env`, its output piped; `fault` arms
    CRYPTOADMIN_FAULT in it (e.g. "broadcast.after_open=pause:120")."""
    env = dict(env, CRYPTOADMIN_FAULT=fault) if fault else env
    return subprocess.Popen(
        [PYTHON, "manage.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sqlite_child_env(db_path) -> dict:
    """An environment for child `manage.py` processes on a fresh SQLite file `db_path`, migrated:
    the test settings, no fault armed, and no async-unsafe allowance (browser tests set it in
    this process; a child must not inherit it)."""
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.pop("CRYPTOADMIN_FAULT", None)
    env.update(
        DJANGO_SETTINGS_MODULE="devtools.settings_test",
        PYTHONPATH=str(REPO),
        DATABASE_URL=f"sqlite:///{db_path}",
    )
    shutil.copyfile(_migrated_sqlite(env), db_path)
    return env


_MIGRATED_SQLITE: list[Path] = []


def _migrated_sqlite(env) -> Path:
    """A file migrated once per test process, copied for each test: a fresh file is exactly
    such a copy, and migrating SQLite costs a child process several seconds of CPU."""
    if not _MIGRATED_SQLITE:
        path = Path(tempfile.mkdtemp(prefix="cryptoadmin-sqlite-")) / "migrated.sqlite3"
        manage(dict(env, DATABASE_URL=f"sqlite:///{path}"), "migrate", "--noinput")
        assert not path.with_name(path.name + "-wal").exists()  # all of it in the one file
        _MIGRATED_SQLITE.append(path)
    return _MIGRATED_SQLITE[0]


def run_python(env, *args, timeout=120) -> subprocess.CompletedProcess:
    """`python <args>` in the repository on `env`, run to its end, its output captured."""
    return subprocess.run(
        [PYTHON, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def manage(env, *args, timeout=120) -> str:
    """`manage.py <args>` run to its end on `env`; it must succeed (its stderr in the failure).
    Returns its output."""
    done = run_python(env, "manage.py", *args, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def expect_paused(proc, point):
    """The child says it is parked at fault point `point` (its first line of output)."""
    line = proc.stdout.readline()
    assert line.strip() == f"paused {point}", (
        line,
        proc.stderr.read() if proc.poll() is not None else "",
    )


# --- waits ---------------------------------------------------------------------------------


def wait_until(predicate, timeout=20.0, interval=0.1, what="condition"):
    """Poll `predicate` until it returns something true (returned); fails the test instead of
    hanging when another process or thread never brings the condition about."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


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


# --- factories -----------------------------------------------------------------------------


def make_currency(code="BTC", **kwargs):
    from ledger.models import Currency

    kwargs.setdefault("crediting_threshold", 2)
    kwargs.setdefault("polling_threshold", 4)
    return Currency.objects.create(code=code, name=code, **kwargs)


def make_wallet(currency, server, name=None, **kwargs):
    from ledger.models import Wallet

    return Wallet.objects.create(
        name=name or f"{currency.code}-{server.rpc_port}",
        currency=currency,
        backend="bitcoind",
        backend_settings={"url": server.url},
        **kwargs,
    )


def blockio_wallet_on(fake, currency, name="block.io BTC"):
    """A block.io wallet talking to `fake` (tests.blockio_server.FakeBlockIo) on BTC testnet."""
    from ledger.models import Wallet

    return Wallet.objects.create(
        name=name,
        currency=currency,
        backend="blockio",
        backend_settings={
            "api_key": fake.api_key,
            "pin": fake.pin,
            "base_url": fake.base_url,
            "network": "BTCTEST",
        },
    )


def run_queued_tasks(group=None) -> list:
    """Run what async_task queued (the ORM broker's rows) here, as a worker would, oldest
    first, and take them off the queue: the tests see the task a page queued, not a call the
    test makes up. Returns each task's result."""
    from django.utils.module_loading import import_string
    from django_q.models import OrmQ

    results = []
    for row in OrmQ.objects.order_by("id"):
        task = row.task
        if group is not None and task.get("group") != group:
            continue
        row.delete()
        func = task["func"]
        func = import_string(func) if isinstance(func, str) else func
        results.append(func(*task.get("args", ()), **task.get("kwargs", {})))
    return results


def offline_wallet(currency, name="offline", **kwargs):
    """A bitcoind wallet row whose node is nowhere: for tests that need only the database."""
    from ledger.models import Wallet

    return Wallet.objects.create(
        name=name,
        currency=currency,
        backend="bitcoind",
        backend_settings={"url": NOWHERE_URL},
        **kwargs,
    )


def credit_user(wallet, user_id, amount):
    """Put `amount` base units on a user's 201 from the wallet's 910 import account: coins the
    node already holds (mined to it) become the user's in the books."""
    from ledger import services
    from ledger.models import Account

    account = services.user_account(user_id, wallet.currency, Account.Code.BALANCE)
    services.post(services.system_account(wallet, Account.Code.IMPORT), account, amount, "import")
    return account


def funded_wallet(currency, server, user_id="alice", blocks=120):
    """A wallet on `server` (a fresh node) whose whole mature balance is imported to a user's
    201. Nothing may mine on that node afterwards: maturing coinbases would change its balance."""
    server.generate(blocks)
    wallet = make_wallet(currency, server)
    balance = wallet.get_backend().get_balance(0)
    return wallet, credit_user(wallet, user_id, balance)


# --- fakes ---------------------------------------------------------------------------------


class SendOutcomeUnknown(BitcoindBackend):
    """A real node whose send never answers: the broadcast may or may not have happened.
    It sends the sendmany way (not signing first), as a backend that cannot sign here does:
    the case a person settles by hand."""

    signs_first = False

    def send_many(self, outputs, comment, **kwargs):
        raise OutcomeUnknown("read timeout after sending (simulated)")


# --- users, roles and sign-in ----------------------------------------------------------------

ROLE_PASSWORD = "pw-role-member"


def ensure_roles():
    """The Viewer/Operator/Admin groups as the latest roles migration leaves them. A
    transactional test's flush wipes what data migrations wrote (post_migrate gives back
    content types and permissions, not groups), so whoever needs the groups asks for them."""
    import django.apps
    from django.contrib.auth.models import Group

    from cryptoadmin.roles import ROLES, sync_roles

    if Group.objects.filter(name__in=ROLES).count() != len(ROLES):
        sync_roles(django.apps.apps)


def member_of(role: str, username: str | None = None, password: str = ROLE_PASSWORD):
    """A staff user whose only permissions come from the group `role`."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    ensure_roles()
    user = get_user_model().objects.create_user(
        username or f"{role.lower()}-member", password=password, is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return user


def client_as(client, role: str, username: str | None = None):
    """`client`, signed in as a fresh member of `role`; returns (client, user)."""
    user = member_of(role, username)
    client.force_login(user)
    return client, user


def grant(user, *codenames):
    """Give a user permissions by 'app_label.codename'."""
    from django.contrib.auth.models import Permission

    for full in codenames:
        app_label, codename = full.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    # Permission caches live on the instance.
    for attr in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)
    return user


def verify_session(client, user):
    """Mark `client`'s session as signed in with a second factor of `user`'s own."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice

    device, _ = StaticDevice.objects.get_or_create(
        user=user, name="test sign-in", defaults={"confirmed": True}
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def totp_device(user):
    """A confirmed TOTP authenticator for `user`, and a function giving its current code."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)

    def code():
        return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"

    return device, code


# --- the operator persona --------------------------------------------------------------------


class OperatorPersona:
    """A person on duty in the Operator group who settles interrupted broadcasts the way the
    close page lets them, through the same services: on a nonce backend (block.io), while a
    retry is safe, "Retry with the same nonce"; otherwise "Find on chain", then "It reached the
    network" with the one transaction found, or "It never left" when none is. Anything the
    services refuse (still sending, a broadcaster busy, several transactions found) is left
    for the next look, and noted.

    `settled` holds the ids of the broadcasts this person closed."""

    def __init__(self, username: str = "operator-on-duty"):
        from django.contrib.auth import get_user_model

        ensure_roles()
        existing = get_user_model().objects.filter(username=username).first()
        self.user = existing or member_of("Operator", username)
        self.settled: list[int] = []
        self.notes: list[str] = []

    def settle(self, wallet, only=None) -> int:
        """Look at the wallet's interrupted broadcasts (`only`: among these ids) and close what
        the chain shows. Returns how many were closed."""
        from broadcasts.closing import close_broadcast_by_hand, search_on_chain
        from broadcasts.models import Broadcast
        from broadcasts.nonce import nonce_retry_allowed
        from broadcasts.selections import interrupted_broadcasts
        from cryptoadmin.errors import CloseRefused
        from ledger.backends import BackendError

        Close = Broadcast.CloseMethod
        rows = interrupted_broadcasts().filter(wallet_id=wallet.pk).order_by("pk")
        if only is not None:
            rows = rows.filter(pk__in=list(only))
        closed = 0
        for broadcast in rows:
            txid, how = "", None
            try:
                backend = broadcast.wallet.get_backend()
                if backend.supports_nonce and nonce_retry_allowed(broadcast):
                    how, reason = Close.SAME_NONCE, "the send's reply was lost; retried its nonce"
                else:
                    found = search_on_chain(broadcast, by=self.user)
                    if len(found) == 1:
                        how, txid = Close.REACHED_NETWORK, found[0]
                        reason = f"found on chain as {txid}"
                    elif not found:
                        how, reason = Close.NEVER_LEFT, "nothing on chain carries its comment"
                    else:
                        self.notes.append(f"broadcast #{broadcast.pk}: {len(found)} found: {found}")
                        continue
                close_broadcast_by_hand(broadcast, how, by=self.user, reason=reason, txid=txid)
            except (CloseRefused, BackendError) as exc:
                self.notes.append(f"broadcast #{broadcast.pk} not closed ({how}): {exc}")
                continue
            self.settled.append(broadcast.pk)
            closed += 1
        return closed
