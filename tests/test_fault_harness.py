"""The fault harness: every `faults.point(...)` in the money paths, one process SIGKILLed there.

For each point found in the source (ledger/, broadcasts/, balances/), a real child process
(`manage.py update_confirmations`, `walletnotify`, `broadcast`, `import_wallet_balance`,
`rescan_addresses`, a reconcile) runs with `CRYPTOADMIN_FAULT=<point>=kill` and must die there
(-9: the point is on its path); the
next cycle then runs in a clean process, the chain is driven to quiescence, and the
invariants (tests/invariants.py) must all hold. Points added later are picked up on their
own; one whose area has no scenario here fails `test_it_has_a_scenario_for_every_fault_point`.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from cryptoadmin.localservices import LocalBitcoind
from ledger import services as ledger
from ledger.models import Account
from ledger.money import to_units
from tests import invariants
from tests.support import PYTHON, REPO, credit_user, make_currency, make_wallet, wait_until

POINT_RE = re.compile(r"""faults\.point\(\s*["']([A-Za-z0-9_.:-]+)["']\s*\)""")
SOURCE_DIRS = ("ledger", "broadcasts", "balances")

# The first part of a point's name says which process reaches it.
SCENARIOS = {
    "poll": "poll",
    "credit": "poll",
    "confirmations": "poll",
    "deposit": "poll",
    "walletnotify": "walletnotify",
    "notify": "walletnotify",
    "rescan": "rescan",
    "broadcast": "broadcast",
    "fee": "broadcast",
    "send": "broadcast",
    "settle": "broadcast",
    "import": "import",
    "reconcile": "reconcile",
}
# Points whose process needs more than their area's usual work to get there.
POINT_SCENARIOS = {
    "broadcast.before_fail_commit": "broadcast_refused",  # the node refuses the send (no spendable coins)
}
# Points no bitcoind scenario reaches; each stays visible as an xfail naming why.
NO_SCENARIO = {
    "broadcast.after_retry_claim": "reached only by a block.io send re-issued with its nonce (a nonce backend)",
    "broadcast.after_retry_send": "reached only by a block.io send re-issued with its nonce (a nonce backend)",
    "broadcast.before_late_reply_commit": "reached only when the node's reply arrives after the send's lease ended",
    "broadcast.isolation_after_collect": "reached when the node refuses one output of a batch; covered in "
    "process with a node that refuses dust (tests/test_withdrawal_control.py), no child scenario yet",
    "broadcast.before_refusal_commit": "reached when the node refuses one output of a batch; covered in "
    "process with a node that refuses dust (tests/test_withdrawal_control.py), no child scenario yet",
    "broadcast.after_send": "reached only by a sendmany-style send (block.io); bitcoind signs "
    "first since issue 16 (broadcast.after_sign_commit, broadcast.after_raw_send)",
    "broadcast.before_resend": "reached when a signed broadcast's send was lost and the next run "
    "sends it again; covered with real processes in tests/test_sign_first.py",
    "broadcast.before_fee_cap_commit": "reached when a currency's max_fee is below the fee; covered"
    " in process in tests/test_sign_first.py, no child scenario yet",
    "outgoing.before_return_update": "reached by a person's reject or cancel; in-process only so far "
    "(tests/test_withdrawal_control.py: the money stays on 204 when the return dies before commit)",
    "outgoing.before_return_commit": "reached by a person's reject or cancel; in-process only so far "
    "(tests/test_withdrawal_control.py: the money stays on 204 when the return dies before commit)",
}
# Kept short so a killed send's lease (when broadcasts have one) ends within the test.
CHILD_SETTINGS = {"NODE_RPC_TIMEOUT": "10", "BROADCAST_LEASE_MARGIN": "1"}

# Points that expose bugs being fixed on other branches right now. The lead removes a mark
# once the fix is merged (strict: an unexpected pass fails the run, so none is forgotten).
STUCK = ("is stuck in broadcast", "is still opened at quiescence")
KNOWN_BUGS: dict = {
    # Issue 16 (sign first, send after) let the machine settle what broadcast.after_open,
    # broadcast.after_send, broadcast.before_settle_commit and broadcast.before_fail_commit
    # left for a person: their marks are gone.
}


class KnownBug(AssertionError):
    """Only the violations a known bug produces: anything else fails the test outright."""


def source_points() -> list[str]:
    found = set()
    for folder in SOURCE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            if "migrations" not in path.parts:
                found.update(POINT_RE.findall(path.read_text()))
    return sorted(found)


def scenario_of(point: str) -> str | None:
    return POINT_SCENARIOS.get(point) or SCENARIOS.get(point.split(".", 1)[0])


class NoScenario(AssertionError):
    pass


def _params():
    out = []
    for point in source_points():
        if point in NO_SCENARIO:
            marks = [
                pytest.mark.xfail(
                    strict=True, raises=NoScenario, reason=f"no scenario: {NO_SCENARIO[point]}"
                )
            ]
        elif point in KNOWN_BUGS:
            marks = [pytest.mark.xfail(strict=True, raises=KnownBug, reason=KNOWN_BUGS[point][0])]
        else:
            marks = []
        out.append(pytest.param(point, marks=marks, id=point))
    return out


def test_it_finds_the_fault_points_in_the_source():
    points = source_points()
    for expected in ("broadcast.after_open", "broadcast.after_send", "import.before_commit"):
        assert expected in points


def test_it_has_a_scenario_for_every_fault_point():
    missing = [p for p in source_points() if scenario_of(p) is None and p not in NO_SCENARIO]
    assert not missing, (
        f"fault points with no scenario in tests/test_fault_harness.py SCENARIOS: {missing}"
    )


# -- two nodes for the whole module: ours and the outside world ------------------------------


@pytest.fixture(scope="module")
def pair():
    outside = LocalBitcoind().start()
    ours = LocalBitcoind(peer=outside).start()
    try:
        outside.generate(115)  # 15 mature coinbases to pay us with
        wait_until(lambda: ours.rpc("getblockcount") == 115, what="our node to sync")
        yield ours, outside
    finally:
        ours.stop()
        outside.stop()


def pay(ours, outside, address, btc: str) -> str:
    txid = outside.rpc("sendtoaddress", address, btc)
    wait_until(
        lambda: txid in ours.rpc("getrawmempool") or _known(ours, txid), what=f"{txid} on our node"
    )
    return txid


def _known(node, txid):
    try:
        node.rpc("gettransaction", txid)
        return True
    except Exception:
        return False


def child(child_env, *args, fault=None, timeout=120):
    env = dict(child_env)
    env.pop("CRYPTOADMIN_FAULT", None)
    env.update(CHILD_SETTINGS)
    if fault:
        env["CRYPTOADMIN_FAULT"] = fault
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def books(pair, transactional_db):
    """A wallet on our node whose whole balance is already in the books, and alice with a
    credited deposit from outside."""
    ours, outside = pair
    invariants.mine(ours, outside, 1)  # whatever an earlier test left in the mempool
    before = frozenset(e["txid"] for e in invariants.node_entries(ours) if "txid" in e)
    currency = make_currency("BTC")
    wallet = make_wallet(currency, ours)
    held = wallet.get_backend().get_balance(0)
    treasury = (
        credit_user(wallet, "treasury", held)
        if held
        else ledger.user_account("treasury", currency, Account.Code.BALANCE)
    )
    address = ledger.new_receiving_address(wallet, "alice")
    pay(ours, outside, address.address, "2")
    invariants.mine(ours, outside, currency.polling_threshold)
    invariants.cycle(wallet)
    alice = ledger.user_account("alice", currency, Account.Code.BALANCE)
    assert ledger.balance(alice) == to_units("2", 8)
    assert invariants.check(wallet, ours, before) == []
    return dict(
        wallet=wallet,
        currency=currency,
        treasury=treasury,
        alice=alice,
        address=address,
        held=held,
        before=before,
    )


def prepare(kind, books, ours, outside) -> list[str]:
    """Bring the books to where `kind` has work, and return its command line."""
    wallet, currency = books["wallet"], books["currency"]
    if kind in ("broadcast", "broadcast_refused"):
        from broadcasts.services import send_external

        for btc in ("0.5", "0.25"):
            send_external(books["alice"], outside.rpc("getnewaddress"), to_units(btc, 8))
        if kind == "broadcast_refused":
            # Every coin locked: sendmany answers "insufficient funds", provably nothing sent.
            # The next cycle runs after unlock() below.
            ours.rpc(
                "lockunspent",
                False,
                [{"txid": u["txid"], "vout": u["vout"]} for u in ours.rpc("listunspent", 0)],
            )
        return ["broadcast", "--wallet", wallet.name]
    if kind == "poll":
        pay(ours, outside, books["address"].address, "1")
        invariants.mine(
            ours, outside, currency.polling_threshold
        )  # due for credit and closing at once
        return ["update_confirmations"]
    if kind == "walletnotify":
        txid = pay(ours, outside, books["address"].address, "0.3")
        invariants.mine(ours, outside, currency.polling_threshold)
        return ["walletnotify", currency.code, txid]
    if kind == "import":
        pay(ours, outside, ours.rpc("getnewaddress"), "0.7")  # coins the books know no owner of
        invariants.mine(ours, outside, 1)
        return ["import_wallet_balance", wallet.name, str(books["treasury"].pk), "--yes"]
    if kind == "reconcile":
        code = (
            "from ledger.actors import SYSTEM; from ledger.models import Wallet; "
            "from ledger.reconcile import record_reconciliation; "
            f"record_reconciliation(Wallet.objects.get(pk={wallet.pk}), by=SYSTEM)"
        )
        return ["shell", "-c", code]
    if kind == "rescan":
        pay(ours, outside, books["address"].address, "0.4")  # a deposit no poll has seen yet
        invariants.mine(ours, outside, 1)
        return ["rescan_addresses", "--currency", currency.code]
    raise AssertionError(f"no scenario {kind!r}")


@pytest.mark.node
@pytest.mark.parametrize("point", _params())
def test_it_keeps_the_invariants_when_a_process_dies_at(point, pair, books, child_env):
    ours, outside = pair
    if point in NO_SCENARIO:
        raise NoScenario(NO_SCENARIO[point])
    kind = scenario_of(point)
    command = prepare(kind, books, ours, outside)

    killed = child(child_env, *command, fault=f"{point}=kill")
    assert killed.returncode == -9, (
        f"{point} was not reached by {command}: {killed.stdout}{killed.stderr[-2000:]}"
    )

    if kind == "broadcast_refused":
        ours.rpc("lockunspent", True)
    # The next cycle, in a clean process; then everything settles.
    child(child_env, *command)
    invariants.quiesce(books["wallet"], ours, outside)
    violations = invariants.check(books["wallet"], ours, books["before"])
    if violations and point in KNOWN_BUGS:
        signs = KNOWN_BUGS[point][1]
        assert all(any(sign in v for sign in signs) for v in violations), "\n".join(violations)
        raise KnownBug("\n".join(violations))
    assert violations == [], "\n".join(violations)
    if kind == "import":
        # The coins the killed import saw are in the books exactly once.
        assert ledger.balance(books["treasury"]) == books["held"] + to_units("0.7", 8)
