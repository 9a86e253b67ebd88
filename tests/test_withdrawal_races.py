"""Approve racing cancel between two real processes (issue 15): two `manage.py shell -c`
children, each holding the withdrawal as its person's page showed it (awaiting approval), are
released together, or one is parked inside its step while the other acts. Exactly one wins,
the loser is told someone acted first, and the money is in exactly one place. On PostgreSQL
(the suite's database; the cancel's return also reaches this process's balance cache through
LISTEN/NOTIFY) and on SQLite (a migrated temporary file, children only)."""

import json
import subprocess

import pytest
from django.test import Client

from balances.models import ApiToken
from broadcasts.models import OutgoingTransaction, WithdrawalRule
from broadcasts.withdrawals import send_external
from ledger import services as ledger
from ledger.models import Account, Transaction
from tests.support import PYTHON, REPO, credit_user, grant, manage, sqlite_child_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

Q = OutgoingTransaction.State

# The child loads the row and the person first (its page), says "ready", then waits for the
# parent's line on stdin, so both act as close together as two processes can.
DECIDE = """
import sys
from django.contrib.auth import get_user_model
from broadcasts import approvals
from broadcasts.errors import DecisionError
from broadcasts.models import OutgoingTransaction
seen = OutgoingTransaction.objects.get(pk={pk})
person = get_user_model().objects.get(username={username!r})
print("ready", flush=True)
sys.stdin.readline()
try:
    approvals.{verb}(seen, person{reason})
    print("won", flush=True)
except DecisionError as exc:
    print("lost", exc, flush=True)
"""


def decider(env, verb, pk, username, pause=None):
    env = dict(env)
    env.pop("CRYPTOADMIN_FAULT", None)
    if pause:
        env["CRYPTOADMIN_FAULT"] = f"{pause}=pause:1.5"
    code = DECIDE.format(
        pk=pk, username=username, verb=verb, reason=", 'race'" if verb == "cancel" else ""
    )
    proc = subprocess.Popen(
        [PYTHON, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    expect(proc, "ready")
    return proc


def expect(proc, prefix):
    line = proc.stdout.readline()
    assert line.startswith(prefix), (
        line,
        proc.stderr.read() if proc.poll() is not None else "",
    )
    return line.strip()


def release(*procs):
    for proc in procs:
        proc.stdin.write("go\n")
    for proc in procs:
        proc.stdin.flush()


def outcome(proc):
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out.strip().splitlines()[-1]


def race(env, pk, *, pause=None):
    """(approve's last line, cancel's last line). `pause`: cancel is parked at that point
    (after its release) and approve is released only once it is parked there."""
    procs = []
    try:
        procs.append(approve := decider(env, "approve", pk, "approver"))
        procs.append(cancel := decider(env, "cancel", pk, "canceller", pause=pause))
        if pause:
            release(cancel)
            expect(cancel, f"paused {pause}")
            release(approve)
        else:
            release(approve, cancel)
        return outcome(approve), outcome(cancel)
    finally:
        for proc in procs:  # a failed assertion leaves no child holding the test database
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def assert_one_won(approved, cancelled):
    lines = sorted([approved, cancelled])
    assert lines[1] == "won" and lines[0].startswith("lost"), (approved, cancelled)
    assert "someone acted first" in lines[0], lines[0]
    return "approve" if approved == "won" else "cancel"


@pytest.fixture
def people(django_user_model, operator):
    approver = django_user_model.objects.create_user("approver", is_staff=True)
    grant(approver, "broadcasts.approve_outgoingtransaction")
    canceller = django_user_model.objects.create_user("canceller", is_staff=True)
    grant(canceller, "broadcasts.cancel_outgoingtransaction")
    return operator


def balances(currency, user_id):
    a201 = ledger.user_account(user_id, currency, Account.Code.BALANCE)
    a204 = ledger.user_account(user_id, currency, Account.Code.WITHDRAW_LOCKED)
    got = ledger.balances([a201.pk, a204.pk])
    return got[a201.pk], got[a204.pk]


def assert_money_once(currency):
    """Each withdrawal's amount is on 204 (queued) or back on 201 (cancelled), never both."""
    rows = list(OutgoingTransaction.objects.all())
    queued = sum(o.amount for o in rows if o.state == Q.QUEUED)
    for o in rows:
        assert o.state in (Q.QUEUED, Q.CANCELLED)
        assert (o.return_entry_id is not None) == (o.state == Q.CANCELLED)
        assert (o.approved_by_id is not None) == (o.state == Q.QUEUED)
    assert Transaction.objects.filter(kind="returned").count() == sum(
        o.state == Q.CANCELLED for o in rows
    )
    assert balances(currency, "alice") == (10**8 - queued, queued)


def test_it_lets_one_of_two_processes_win_when_released_together(
    wallet, node, people, child_env, balance_cache
):
    WithdrawalRule.objects.create(currency=wallet.currency, approval_above=0)
    alice = credit_user(wallet, "alice", 10**8)
    winners = []
    for _ in range(3):
        out = send_external(alice, node.rpc("getnewaddress"), 1_000_000, created_by=people)
        # This process's cache holds alice's figures before the children act.
        before = balance_cache.get_balance("alice", "BTC", 201)
        winners.append(assert_one_won(*race(child_env, out.pk)))
        out.refresh_from_db()
        assert out.state == {"approve": Q.QUEUED, "cancel": Q.CANCELLED}[winners[-1]]
        # A return booked by another process reaches this process's cache (LISTEN/NOTIFY;
        # within the staleness bound at worst), as GraphQL reads it.
        want = before + 1_000_000 if winners[-1] == "cancel" else before
        wait_until(
            lambda want=want: balance_cache.get_balance("alice", "BTC", 201) == want, timeout=3
        )
    assert_money_once(wallet.currency)


@pytest.mark.parametrize(
    "pause,winner",
    [
        # Cancel has updated the row and holds it until it commits: approve's UPDATE waits on
        # the row, then finds it cancelled.
        ("outgoing.before_return_commit", "cancel"),
        # Cancel has written its return entry, not yet its UPDATE: approve commits first, the
        # cancel's UPDATE finds the row approved and its entry rolls back.
        ("outgoing.before_return_update", "approve"),
    ],
)
def test_it_lets_the_first_process_win_when_the_other_is_inside_its_step(
    wallet, node, people, child_env, balance_cache, pause, winner
):
    WithdrawalRule.objects.create(currency=wallet.currency, approval_above=0)
    alice = credit_user(wallet, "alice", 10**8)
    out = send_external(alice, node.rpc("getnewaddress"), 3_000_000, created_by=people)
    assert balance_cache.get_balance("alice", "BTC", 204) == 3_000_000
    assert assert_one_won(*race(child_env, out.pk, pause=pause)) == winner
    assert_money_once(wallet.currency)
    want = 0 if winner == "cancel" else 3_000_000
    wait_until(lambda: balance_cache.get_balance("alice", "BTC", 204) == want, timeout=3)
    # GraphQL, served from this process's cache, answers the same.
    token = ApiToken.issue("wallets app")[1]
    query = 'query { user(id: "alice") { currencies { id balance withdrawLockedBalance } } }'
    answer = Client().post(
        "/graphql",
        {"query": query},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert answer.json()["data"]["user"]["currencies"] == [
        {
            "id": "BTC",
            "balance": "1.00000000" if winner == "cancel" else "0.97000000",
            "withdrawLockedBalance": "0.00000000" if winner == "cancel" else "0.03000000",
        }
    ]


# -- SQLite: the same race between two processes sharing one database file -----------------

SETUP = """
from django.contrib.auth import get_user_model
from broadcasts.models import WithdrawalRule
from broadcasts.withdrawals import send_external
from tests.support import credit_user, grant, make_currency, make_wallet

class Node:
    rpc_port, url = {port}, {url!r}

btc = make_currency("BTC")
WithdrawalRule.objects.create(currency=btc, approval_above=0)
wallet = make_wallet(btc, Node())
alice = credit_user(wallet, "alice", 10**8)
users = get_user_model().objects
queuer = users.create_user("queuer", is_staff=True)
grant(users.create_user("approver", is_staff=True), "broadcasts.approve_outgoingtransaction")
grant(users.create_user("canceller", is_staff=True), "broadcasts.cancel_outgoingtransaction")
print(*(send_external(alice, a, 1_000_000, created_by=queuer).pk for a in {addresses!r}))
"""

STATE = """
import json
from broadcasts.models import OutgoingTransaction
from ledger import services as ledger
from ledger.models import Account, Currency, Transaction
btc = Currency.objects.get(code="BTC")
codes = (Account.Code.BALANCE, Account.Code.WITHDRAW_LOCKED)
a201, a204 = (ledger.user_account("alice", btc, c) for c in codes)
got = ledger.balances([a201.pk, a204.pk])
print(json.dumps(dict(
    states=sorted(OutgoingTransaction.objects.values_list("state", flat=True)),
    returned=Transaction.objects.filter(kind="returned").count(),
    balances=[got[a201.pk], got[a204.pk]],
)))
"""


def shell(env, code):
    out = manage(env, "shell", "--no-imports", "-c", code).strip()
    return out.splitlines()[-1] if out else ""


def test_it_lets_one_of_two_processes_win_on_sqlite(tmp_path, node):
    env = sqlite_child_env(tmp_path / "db.sqlite3")
    addresses = [node.rpc("getnewaddress") for _ in range(3)]
    ids = shell(env, SETUP.format(port=node.rpc_port, url=node.url, addresses=addresses)).split()
    winners = [assert_one_won(*race(env, ids[0]))]
    winners.append(
        assert_one_won(*race(env, ids[1], pause="outgoing.before_return_commit"))
    )  # cancel holds the database's write lock until it commits: approve waits, then loses
    assert winners[1] == "cancel"
    # On SQLite the cancel's transaction holds the write lock from its first write: parked
    # before its UPDATE, it still goes first, and approve waits, then loses.
    winners.append(assert_one_won(*race(env, ids[2], pause="outgoing.before_return_update")))
    assert winners[2] == "cancel"
    state = json.loads(shell(env, STATE))
    cancelled = winners.count("cancel")
    assert state == dict(
        states=sorted(["cancelled"] * cancelled + ["queued"] * (3 - cancelled)),
        returned=cancelled,
        balances=[10**8 - (3 - cancelled) * 1_000_000, (3 - cancelled) * 1_000_000],
    )
