"""A deposit paid to us while the tip stays where it was is recorded by the next poll cycle,
without waiting for a block: the tip call also reads the wallet's newest transaction, and
another newest transaction reads the window of the unchanged tip (the unconfirmed ones)."""

import pytest

from cryptoadmin import faults
from ledger import services
from ledger.confirmations.cycle import poll_wallet
from ledger.models import NetworkTransaction, Transaction, Wallet
from tests.support import make_currency, make_wallet, pay_from_outside, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(db, two_nodes):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    return wallet, ours, outside


def newest(node):
    """The txid of the wallet's newest transaction, as the tip call reads it ("": none yet)."""
    entries = node.rpc("listtransactions", "*", 1, 0, True)
    return entries[-1]["txid"] if entries else ""


def poll(wallet):
    wallet.refresh_from_db()
    return poll_wallet(wallet)


def test_it_records_an_unconfirmed_deposit_when_the_tip_did_not_move(setup):
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "alice")
    poll(wallet)
    tip = Wallet.objects.get(pk=wallet.pk).last_block_hash
    txid = pay_from_outside(ours, outside, address.address, "0.75")
    assert ours.rpc("getbestblockhash") == tip  # nothing mined in between
    summary = poll(wallet)
    row = NetworkTransaction.objects.with_confirmations().get(txid=txid)
    assert (row.type, row.state, row.confirmations, row.credited_at) == (
        "deposit",
        "open",
        0,
        None,
    ), summary
    assert row.block_height is None and row.confirmations_now == 0
    assert summary.discovered == 1 and summary.closed == 0
    assert not Transaction.objects.filter(kind="deposit").exists()
    assert services.balance(services.user_account("alice", wallet.currency)) == 0
    assert Wallet.objects.get(pk=wallet.pk).last_block_hash == tip
    assert summary.round_trips == 2, summary  # the tip and newest transaction, then the window
    assert Wallet.objects.get(pk=wallet.pk).last_tx_marker == newest(ours) == txid
    # Seen once: the next cycle reads no window; it asks the unconfirmed row by txid, as every
    # cycle asks the rows with no block.
    again = poll(wallet)
    assert (again.round_trips, again.discovered, again.checked) == (2, 0, 1), again
    assert NetworkTransaction.objects.filter(txid=txid).count() == 1


def test_it_reads_no_window_when_neither_the_tip_nor_the_newest_transaction_moved(setup):
    wallet, ours, outside = setup
    services.new_receiving_address(wallet, "alice")
    poll(wallet)
    idle = poll(wallet)
    assert idle.round_trips == 1 and idle.statements <= 3, idle
    assert Wallet.objects.get(pk=wallet.pk).last_tx_marker == newest(ours)


def test_it_places_and_credits_the_mempool_deposit_once_it_is_mined(setup):
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "alice")
    poll(wallet)
    txid = pay_from_outside(ours, outside, address.address, "0.5")
    poll(wallet)
    for _ in range(2):
        outside.generate(1)
        height = outside.rpc("getblockcount")
        wait_until(lambda h=height: ours.rpc("getblockcount") == h, what="block relay")
        poll(wallet)
    row = NetworkTransaction.objects.with_confirmations().get(txid=txid)
    assert row.confirmations_now == 2 and row.credited_at is not None
    assert Transaction.objects.filter(kind="deposit", network_transaction=row).count() == 1
    assert services.balance(services.user_account("alice", wallet.currency)) == 50_000_000


@pytest.mark.parametrize(
    "point", ["poll.after_listsinceblock", "poll.after_record", "poll.before_cursor"]
)
def test_it_records_the_mempool_deposit_once_when_the_cycle_dies(setup, point):
    """Dead before the marker is stored: the next cycle sees another newest transaction and reads
    the window again; the deposit is one row, open and uncredited."""
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "alice")
    poll(wallet)
    stored = Wallet.objects.get(pk=wallet.pk).last_tx_marker
    txid = pay_from_outside(ours, outside, address.address, "0.25")
    with faults.armed({point: "raise"}) as reached, pytest.raises(faults.InjectedFault):
        poll(wallet)
    assert reached[point] == 1
    assert Wallet.objects.get(pk=wallet.pk).last_tx_marker == stored
    summary = poll(wallet)
    assert summary.round_trips == 2, summary  # the window read again
    row = NetworkTransaction.objects.get(txid=txid)
    assert (row.state, row.credited_at) == ("open", None)
    assert NetworkTransaction.objects.filter(txid=txid).count() == 1
    assert Wallet.objects.get(pk=wallet.pk).last_tx_marker == newest(ours)
    assert not Transaction.objects.filter(kind="deposit").exists()
