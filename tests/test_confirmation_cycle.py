"""A poll cycle at the physical limit (issue 17): confirmations derived from the wallet's tip,
reorgs found by block hash, a constant number of node round trips and SQL statements."""

import pytest

from ledger.backends.bitcoind import BitcoindBackend
from ledger.confirmations.cycle import poll_wallet
from ledger.models import NetworkTransaction, Wallet
from tests.support import make_currency, make_wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def single(db, fresh_node):
    node = fresh_node()
    node.generate(101)
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=50), node)
    return wallet, node


def sends(wallet, node, n):
    """n of our own broadcasts, as rows the tracker follows."""
    txids = [node.rpc("sendtoaddress", node.rpc("getnewaddress"), "0.01") for _ in range(n)]
    NetworkTransaction.objects.bulk_create(
        [
            NetworkTransaction(currency=wallet.currency, wallet=wallet, txid=t, type="broadcast")
            for t in txids
        ]
    )
    return txids


def poll(wallet):
    wallet.refresh_from_db()
    return poll_wallet(wallet)


def node_confirmations(node, txids):
    return {t: node.rpc("gettransaction", t)["confirmations"] for t in txids}


def our_confirmations(txids):
    return {
        r.txid: r.confirmations_now
        for r in NetworkTransaction.objects.with_confirmations().filter(txid__in=txids)
    }


def test_it_asks_only_for_the_tip_when_nothing_was_mined(single):
    wallet, node = single
    txids = sends(wallet, node, 5)
    node.generate(1)
    poll(wallet)
    idle = poll(wallet)
    assert idle.round_trips == 1 and idle.statements <= 3, idle
    assert our_confirmations(txids) == node_confirmations(node, txids) == {t: 1 for t in txids}


def test_it_costs_the_same_round_trips_and_statements_whatever_the_number_of_open_rows(single):
    wallet, node = single
    few = sends(wallet, node, 3)
    node.generate(1)
    poll(wallet)
    node.generate(1)
    small = poll(wallet)
    many = few + sends(wallet, node, 60)
    node.generate(1)
    poll(wallet)
    node.generate(1)
    large = poll(wallet)
    # 4 for the cycle; 1 for the events' pass over the wallet's rows at the new tip, and 2 for
    # the savepoint its transaction is inside the test's own.
    assert (
        (large.round_trips, large.statements) == (small.round_trips, small.statements) == (2, 7)
    ), (small, large)
    assert our_confirmations(many) == node_confirmations(node, many)


def test_it_finds_a_reorg_by_block_hash_when_confirmations_do_not_drop(single):
    wallet, node = single
    [txid] = sends(wallet, node, 1)
    node.generate(1)
    poll(wallet)
    first = node.rpc("gettransaction", txid)["blockhash"]
    assert NetworkTransaction.objects.get(txid=txid).block_hash == first
    node.rpc("invalidateblock", first)  # the block goes; the transaction returns to the mempool
    node.generate(2)  # another branch mines it again, one block deeper than before: 2 confirmations
    second = node.rpc("gettransaction", txid)["blockhash"]
    assert second != first
    summary = poll(wallet)
    row = NetworkTransaction.objects.with_confirmations().get(txid=txid)
    assert (row.block_hash, row.confirmations_now) == (second, 2), summary
    assert row.block_height == node.rpc("getblock", second)["height"]


class MinesDuringTheCycle(BitcoindBackend):
    """A block arrives between the tip and the window: the worst moment for deriving heights."""

    def __init__(self, wallet, node):
        super().__init__(wallet)
        self.node = node

    def since_tip(self, blockhash, heights):
        self.node.generate(1)
        return super().since_tip(blockhash, heights)


def test_it_derives_no_height_from_a_tip_that_moved_during_the_cycle(single):
    wallet, node = single
    txids = sends(wallet, node, 3)
    node.generate(1)
    poll(wallet)
    more = sends(wallet, node, 2)
    node.generate(1)
    tip_before = Wallet.objects.get(pk=wallet.pk).last_block_height
    wallet.refresh_from_db()
    poll_wallet(wallet, MinesDuringTheCycle(wallet, node))
    assert Wallet.objects.get(pk=wallet.pk).last_block_height == tip_before  # the cursor stays
    # Nothing is placed one block off: every row is right now, or not placed yet.
    for row in NetworkTransaction.objects.with_confirmations().filter(txid__in=more):
        assert (
            row.block_height is None
            or row.block_height == node.rpc("getblock", row.block_hash)["height"]
        )
    poll(wallet)
    assert our_confirmations(txids + more) == node_confirmations(node, txids + more)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "fault", ["poll.after_place=kill", "poll.after_record=kill", "credit.before_commit=kill"]
)
def test_it_credits_a_placed_deposit_once_after_the_poller_is_killed(fresh_node, child_env, fault):
    """A deposit placed in its block by one cycle, credited by a later one from its height:
    a poller killed in that later cycle leaves it uncredited and open, and the next credits it
    once."""
    import signal
    import subprocess

    from ledger import services
    from ledger.models import Transaction
    from tests.support import PYTHON, REPO

    node = fresh_node()
    node.generate(101)
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=3), node)
    address = services.new_receiving_address(wallet, "alice")
    txid = node.rpc("sendtoaddress", address.address, "0.3")
    node.generate(1)
    poll(wallet)
    assert (
        NetworkTransaction.objects.get(txid=txid).block_height is not None
    )  # placed, 1 confirmation
    node.generate(2)  # 3: due its credit and at the polling threshold
    env = dict(child_env, CRYPTOADMIN_FAULT=fault)
    killed = subprocess.run(
        [PYTHON, "manage.py", "update_confirmations", "--currency", "BTC"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    row = NetworkTransaction.objects.get(txid=txid)
    assert (row.state, row.credited_at) == ("open", None) or (row.credited_at is not None)
    assert not NetworkTransaction.objects.filter(
        type="deposit", state="closed", credited_at__isnull=True
    ).exists()
    poll(wallet)
    poll(wallet)
    row = NetworkTransaction.objects.get(txid=txid)
    assert row.state == "closed" and row.credited_at is not None
    assert [
        e.amount for e in Transaction.objects.filter(kind="deposit", network_transaction=row)
    ] == [30_000_000]
