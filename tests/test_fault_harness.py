"""The fault harness: every `faults.point(...)` in the money paths, one process SIGKILLed there.

For each point found in the source (ledger/, broadcasts/, balances/), a real child process
(`manage.py update_confirmations`, `walletnotify`, `broadcast`, `import_wallet_balance`,
`rescan_addresses`, a reconcile, a person's cancel) runs with `CRYPTOADMIN_FAULT=<point>=kill`
and must die there (-9: the point is on its path); the next cycle then runs in a clean
process, the chain is driven to quiescence, and the invariants (tests/invariants.py) must all
hold. An operator on duty (tests.support.OperatorPersona, a member of the Operator group)
settles by hand, through the close page's services, what the machine leaves interrupted.
block.io's nonce retry runs against the loopback block.io (tests/blockio_server.py). Points
added later are picked up on their own; one whose area has no scenario here fails
`test_it_has_a_scenario_for_every_fault_point`.
"""

from __future__ import annotations

import re

import pytest

from devtools.localservices import LocalBitcoind
from ledger import services as ledger
from ledger.models import Account, Transaction
from ledger.money import format_units, to_units
from tests import invariants
from tests.support import (
    REPO,
    OperatorPersona,
    blockio_wallet_on,
    credit_user,
    make_currency,
    make_wallet,
    run_python,
    wait_until,
)

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
    "outgoing": "return",  # a person's reject or cancel
}
# Points whose process needs more than their area's usual work to get there.
POINT_SCENARIOS = {
    # The node refuses the send (no spendable coins).
    "broadcast.before_fail_commit": "broadcast_refused",
    # The node refuses the batch, accepts one half, refuses the other alone (coins locked).
    "broadcast.isolation_after_collect": "broadcast_isolated",
    "broadcast.before_refusal_commit": "broadcast_isolated",
    # A broadcast a person closed as never left, whose send the node finishes afterwards.
    "broadcast.before_late_reply_commit": "late_reply",
    # A signed broadcast whose sender died before sending: the next run sends the same bytes.
    "broadcast.before_resend": "resend",
    # A sent broadcast that lost to an earlier signed attempt of ours mined elsewhere.
    "broadcast.before_reverse_commit": "lost",
    # A broadcast whose sender died before signing: the next run fails it once its lease is over.
    "broadcast.before_fail_unsigned": "unsigned",
    # A broadcast whose fee would pass the currency's cap: its outgoing go to needs attention.
    "broadcast.before_fee_cap_commit": "fee_cap",
    # A block.io send whose reply was lost, re-issued with its nonce (a nonce backend).
    "broadcast.after_retry_claim": "blockio_retry",
    "broadcast.after_retry_send": "blockio_retry",
    # Reached only by a sendmany-style send, block.io's first one: bitcoind signs first since
    # issue 16 (its points are broadcast.after_sign_commit and broadcast.after_raw_send).
    "broadcast.after_send": "blockio_send",
}
# Points no child scenario reaches yet; each stays visible as an xfail naming why.
NO_SCENARIO: dict[str, str] = {}
# Kept short so a killed send's lease (when broadcasts have one) ends within the test.
CHILD_SETTINGS = {"NODE_RPC_TIMEOUT": "10", "BROADCAST_LEASE_MARGIN": "1"}


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


def _params(only=None):
    """The points of one block.io scenario (`only`), or else every point of our node's."""
    out = []
    for point in source_points():
        kind = scenario_of(point) or ""
        if (kind != only) if only else kind.startswith("blockio"):
            continue
        if point in NO_SCENARIO:
            marks = [
                pytest.mark.xfail(
                    strict=True, raises=NoScenario, reason=f"no scenario: {NO_SCENARIO[point]}"
                )
            ]
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


def end_leases(wallet):
    """A killed process's send is over: what waiting out its lease does (the next cycle then
    finds the broadcast interrupted at once instead of after the lease)."""
    from broadcasts.models import Broadcast
    from tests.broadcast_helpers import end_lease

    for broadcast in Broadcast.objects.filter(wallet=wallet, state=Broadcast.State.OPENED):
        end_lease(broadcast)


def child(child_env, *args, fault=None, timeout=120, settings=CHILD_SETTINGS):
    env = dict(child_env)
    env.pop("CRYPTOADMIN_FAULT", None)
    env.update(settings)
    if fault:
        env["CRYPTOADMIN_FAULT"] = fault
    return run_python(env, "manage.py", *args, timeout=timeout)


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
        # An operator on duty: settles by hand what the machine leaves interrupted.
        person=OperatorPersona(),
    )


def prepare(kind, books, ours, outside, child_env) -> list[str]:
    """Bring the books to where `kind` has work, and return its command line."""
    wallet, currency = books["wallet"], books["currency"]
    if kind == "broadcast_isolated":
        from broadcasts.withdrawals import send_external

        # One spendable coin of 1 BTC: two outputs of 0.8 together are refused ("insufficient
        # funds", provably nothing sent), so the broadcaster isolates: the first half alone is
        # sent, the second alone refused (its refusal counted). The next cycle runs unlocked.
        txid = pay(ours, outside, books["address"].address, "1")
        invariants.mine(ours, outside, currency.polling_threshold)
        ours.rpc(
            "lockunspent",
            False,
            [
                {"txid": u["txid"], "vout": u["vout"]}
                for u in ours.rpc("listunspent", 0)
                if u["txid"] != txid
            ],
        )
        for _ in range(2):
            send_external(books["alice"], outside.rpc("getnewaddress"), to_units("0.8", 8))
        return ["broadcast", "--wallet", wallet.name]
    if kind == "resend":
        from broadcasts.withdrawals import send_external

        send_external(books["alice"], outside.rpc("getnewaddress"), to_units("0.5", 8))
        command = ["broadcast", "--wallet", wallet.name]
        # A broadcaster dies after signing and recording, before sending: the next run is the
        # machine's, and sends the same bytes again (issue 16).
        assert child(child_env, *command, fault="broadcast.after_sign_commit=kill").returncode == -9
        return command
    if kind == "lost":
        return prepare_lost(books, ours, outside, child_env)
    if kind == "unsigned":
        from broadcasts.withdrawals import send_external

        send_external(books["alice"], outside.rpc("getnewaddress"), to_units("0.5", 8))
        command = ["broadcast", "--wallet", wallet.name]
        assert child(child_env, *command, fault="broadcast.after_open=kill").returncode == -9
        end_leases(wallet)
        return command
    if kind == "fee_cap":
        from broadcasts.models import WithdrawalRule
        from broadcasts.withdrawals import send_external

        WithdrawalRule.objects.update_or_create(currency=currency, defaults={"max_fee": 1})
        send_external(books["alice"], outside.rpc("getnewaddress"), to_units("0.5", 8))
        return ["broadcast", "--wallet", wallet.name]
    if kind == "late_reply":
        from broadcasts.models import Broadcast
        from broadcasts.withdrawals import send_external

        for btc in ("0.5", "0.25"):
            send_external(books["alice"], outside.rpc("getnewaddress"), to_units(btc, 8))
        command = ["broadcast", "--wallet", wallet.name]
        # A broadcaster dies before signing; once its lease is over a person finds nothing on
        # chain and closes it as never left (its outgoing go back to the queue). Since issue 16
        # the machine would fail such a broadcast itself (nothing was signed); the person acts
        # first here, through the close page's service ...
        from broadcasts.closing import close_broadcast_by_hand, search_on_chain

        assert child(child_env, *command, fault="broadcast.after_open=kill").returncode == -9
        end_leases(wallet)
        broadcast = Broadcast.objects.get(wallet=wallet)
        person = books["person"].user
        assert search_on_chain(broadcast, by=person) == []
        close_broadcast_by_hand(
            broadcast,
            Broadcast.CloseMethod.NEVER_LEFT,
            by=person,
            reason="nothing on chain carries its comment",
        )
        broadcast.refresh_from_db()
        assert broadcast.state == Broadcast.State.CLOSED_FAILED
        # ... then the node finishes that send after all (what a node stalled past its caller's
        # timeout does): the broadcast's outputs, under its comment, paid by our wallet.
        ours.rpc(
            "sendmany",
            "",
            {a: format_units(v, 8) for a, v in broadcast.outputs.items()},
            1,
            broadcast.label,
        )
        # The next broadcaster finds the comment on a wallet send: a late reply, recorded
        # before it collects the outgoing the close put back.
        return command
    if kind == "return":
        from broadcasts.withdrawals import send_external

        out = send_external(books["alice"], outside.rpc("getnewaddress"), to_units("0.3", 8))
        # The person on duty cancels it (the admin's action, through the same service).
        code = (
            "from django.contrib.auth import get_user_model; "
            "from broadcasts.models import OutgoingTransaction; "
            "from broadcasts.approvals import cancel; "
            f"cancel(OutgoingTransaction.objects.get(pk={out.pk}), "
            f"get_user_model().objects.get(pk={books['person'].user.pk}), 'the user asked')"
        )
        return ["shell", "-c", code]
    if kind in ("broadcast", "broadcast_refused"):
        from broadcasts.withdrawals import send_external

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


def first_txid(broadcast) -> str:
    from ledger import rawtx

    return rawtx.txid(bytes.fromhex(broadcast.raw_tx))


def prepare_lost(books, ours, outside, child_env) -> list[str]:
    """A signed attempt is closed as never left; its retry (spending one of its coins) is sent
    while our node is cut off, and meanwhile the first attempt's bytes are mined elsewhere,
    the polling threshold deep: once our node is back, the retry has lost."""
    from broadcasts.closing import close_broadcast_by_hand
    from broadcasts.models import Broadcast
    from broadcasts.withdrawals import send_external
    from ledger.confirmations.cycle import poll_wallet

    wallet = books["wallet"]
    send_external(books["alice"], outside.rpc("getnewaddress"), to_units("0.5", 8))
    command = ["broadcast", "--wallet", wallet.name]
    assert child(child_env, *command, fault="broadcast.after_sign_commit=kill").returncode == -9
    end_leases(wallet)
    first = Broadcast.objects.get(wallet=wallet)
    close_broadcast_by_hand(first, "never_left", by=books["person"].user, reason="not on the node")
    ours.rpc("setnetworkactive", False)
    try:
        assert child(child_env, *command).returncode == 0
        retry = Broadcast.objects.get(wallet=wallet, state=Broadcast.State.BROADCASTED)
        assert set(retry.inputs) & set(first.inputs)
        outside.rpc("sendrawtransaction", first.raw_tx)
        outside.generate(wallet.currency.polling_threshold)
    finally:
        ours.rpc("setnetworkactive", True)
    invariants.wait_synced(ours, outside, timeout=60)
    poll_wallet(wallet)  # the poller finds the retry conflicted, as it finds deposits
    return command


@pytest.mark.node
@pytest.mark.parametrize("point", _params())
def test_it_keeps_the_invariants_when_a_process_dies_at(point, pair, books, child_env):
    ours, outside = pair
    if point in NO_SCENARIO:
        raise NoScenario(NO_SCENARIO[point])
    kind = scenario_of(point)
    command = prepare(kind, books, ours, outside, child_env)

    killed = child(child_env, *command, fault=f"{point}=kill")
    assert killed.returncode == -9, (
        f"{point} was not reached by {command}: {killed.stdout}{killed.stderr[-2000:]}"
    )
    # One payment by construction holds at every step, from the database alone.
    assert invariants.signed_attempts_conflict(books["wallet"]) == []

    end_leases(books["wallet"])
    if kind in ("broadcast_refused", "broadcast_isolated"):
        ours.rpc("lockunspent", True)
    # The next cycle, in a clean process; then everything settles.
    child(child_env, *command)
    invariants.quiesce(books["wallet"], ours, outside, person=books["person"])
    violations = invariants.check(books["wallet"], ours, books["before"])
    assert violations == [], "\n".join(violations + books["person"].notes)
    if kind == "import":
        # The coins the killed import saw are in the books exactly once.
        assert ledger.balance(books["treasury"]) == books["held"] + to_units("0.7", 8)
    if kind == "return":
        # The person's second try gave the money back, once.
        from broadcasts.models import OutgoingTransaction

        assert OutgoingTransaction.objects.get().state == OutgoingTransaction.State.CANCELLED
        assert Transaction.objects.filter(kind=Transaction.Kind.RETURNED).count() == 1
        assert ledger.balance(books["alice"]) == to_units("2", 8)
    if kind == "late_reply":
        # Paid once, by the late send, and a person is told.
        from broadcasts.models import Broadcast

        late = Broadcast.objects.get(close_method=Broadcast.CloseMethod.NEVER_LEFT)
        assert late.needs_attention and late.txid and "LATE REPLY" in late.last_error
    if kind == "resend":
        # The signed bytes were sent by the next run, once: alice's 0.5 left exactly once.
        from broadcasts.models import Broadcast

        (sent,) = Broadcast.objects.filter(wallet=books["wallet"])
        assert sent.state == Broadcast.State.BROADCASTED and sent.recovered_at
        assert sent.closed_by is None
    if kind == "lost":
        # The retry's booking reversed once; the first attempt, mined, pays the withdrawal.
        from broadcasts.models import Broadcast

        first, retry = Broadcast.objects.filter(wallet=books["wallet"]).order_by("id")
        assert retry.reversed_at and retry.dead_reason and retry.needs_attention
        assert first.state == Broadcast.State.BROADCASTED and first.txid == first_txid(first)
        assert Transaction.objects.filter(kind=Transaction.Kind.REVERSED).count() == 2
    if kind == "fee_cap":
        # Never sent: the withdrawal waits for a person with the figures, its money still on 204.
        from broadcasts.models import OutgoingTransaction

        (out,) = OutgoingTransaction.objects.all()
        assert out.state == OutgoingTransaction.State.NEEDS_ATTENTION
        assert "fee" in out.last_error
        assert ledger.balance(books["alice"]) == to_units("1.5", 8)
    if kind == "broadcast_isolated" and point == "broadcast.before_refusal_commit":
        from broadcasts.models import OutgoingTransaction

        # The killed count is not kept; the output went out once the coins were unlocked.
        assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {"broadcasted"}


# -- block.io: a send whose reply was lost, re-issued with its nonce -----------------------------

# The loopback block.io answers at once: a retry's lease (2 x 2 s + 1 s) ends soon.
BLOCKIO_CHILD_SETTINGS = {"NODE_RPC_TIMEOUT": "2", "BROADCAST_LEASE_MARGIN": "1"}


@pytest.fixture
def blockio_queued(transactional_db):
    """A block.io wallet (tests/blockio_server.py, over loopback HTTP, so child processes reach
    it too) holding 1 BTC imported to alice, who has 0.1 BTC queued to an outside address."""
    from broadcasts.withdrawals import send_external
    from ledger import imports
    from tests.blockio_server import FakeBlockIo, new_address

    fake = FakeBlockIo().start()
    try:
        currency = make_currency("BTC", network="testnet")
        wallet = blockio_wallet_on(fake, currency)
        fake.receive(fake.own_address("house"), "1", confirmations=6)
        alice = ledger.user_account("alice", currency, Account.Code.BALANCE)
        imports.import_unaccounted_balance(wallet.pk, alice.pk)
        destination = new_address()[0]
        send_external(alice, destination, to_units("0.1", 8))
        yield dict(wallet=wallet, fake=fake, destination=destination)
    finally:
        fake.stop()


@pytest.fixture
def blockio_books(blockio_queued):
    """blockio_queued, and an interrupted broadcast: block.io closed the connection before
    doing the withdraw, so its outcome is unknown."""
    from broadcasts.broadcaster import Broadcaster
    from broadcasts.models import Broadcast
    from tests.broadcast_helpers import end_lease

    wallet, fake = blockio_queued["wallet"], blockio_queued["fake"]
    fake.fail_next("withdraw", "drop")
    Broadcaster(wallet).run()
    broadcast = Broadcast.objects.get()
    assert broadcast.state == Broadcast.State.OPENED and broadcast.nonce and fake.sent == []
    end_lease(broadcast)  # its lease waited out: interrupted, and a retry is safe
    return dict(blockio_queued, broadcast=broadcast)


def settle_blockio(child_env, wallet, fake, command):
    """After the kill: the next cycle in a clean process once the leases are over, then the
    machine and a person on duty settle whatever is left; block.io's invariants must hold."""
    from broadcasts.broadcaster import Broadcaster

    end_leases(wallet)
    child(child_env, *command, settings=BLOCKIO_CHILD_SETTINGS)
    person = OperatorPersona()
    for _ in range(3):
        invariants.wait_sends_over(wallet)
        Broadcaster(wallet).run()
        person.settle(wallet)
    violations = invariants.check_blockio(wallet, fake)
    assert violations == [], "\n".join(violations + person.notes)


@pytest.mark.parametrize("point", _params(only="blockio_retry"))
def test_it_keeps_the_invariants_when_a_block_io_retry_dies_at(point, blockio_books, child_env):
    wallet, fake = blockio_books["wallet"], blockio_books["fake"]
    command = ["broadcast", "--wallet", wallet.name]

    killed = child(child_env, *command, fault=f"{point}=kill", settings=BLOCKIO_CHILD_SETTINGS)
    assert killed.returncode == -9, (
        f"{point} was not reached by {command}: {killed.stdout}{killed.stderr[-2000:]}"
    )
    # Killed after its claim: not sent again yet; after its send: paid, not booked.
    assert len(fake.sent) == (point == "broadcast.after_retry_send")

    settle_blockio(child_env, wallet, fake, command)
    assert [s["amounts"] for s in fake.sent] == [[(blockio_books["destination"], 10_000_000)]]
    blockio_books["broadcast"].refresh_from_db()
    assert blockio_books["broadcast"].txid == fake.sent[0]["txid"]


@pytest.mark.parametrize("point", _params(only="blockio_send"))
def test_it_keeps_the_invariants_when_a_block_io_send_dies_at(point, blockio_queued, child_env):
    """block.io's first send killed once the withdraw was done, before the books know: the
    next cycles (the machine, then a person on duty retrying the same nonce) settle it, and
    block.io paid once."""
    from broadcasts.models import Broadcast

    wallet, fake = blockio_queued["wallet"], blockio_queued["fake"]
    command = ["broadcast", "--wallet", wallet.name]

    killed = child(child_env, *command, fault=f"{point}=kill", settings=BLOCKIO_CHILD_SETTINGS)
    assert killed.returncode == -9, f"{point} was not reached: {killed.stderr[-2000:]}"
    assert len(fake.sent) == 1  # paid; the books do not know yet

    settle_blockio(child_env, wallet, fake, command)
    assert [s["amounts"] for s in fake.sent] == [[(blockio_queued["destination"], 10_000_000)]]
    (broadcast,) = Broadcast.objects.filter(wallet=wallet)
    assert broadcast.state == Broadcast.State.BROADCASTED
    assert broadcast.txid == fake.sent[0]["txid"]
