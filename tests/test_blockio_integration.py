"""The tracker, broadcaster, rescan and import work unchanged on a block.io wallet."""
import pytest

from broadcasts.models import Broadcast
from broadcasts.services import Broadcaster, close_as_broadcasted, interrupted_broadcasts, send_external
from ledger import imports, services
from ledger.confirmations import update_confirmations
from ledger.models import NetworkTransaction, Transaction
from ledger.reconcile import reconcile
from ledger.rescan import rescan_wallet
from tests.blockio_server import new_address

BTC = 10**8


def _deposits(txid):
    return list(Transaction.objects.filter(kind="deposit", network_transaction__txid=txid))


def test_it_polls_and_credits_a_deposit_once(blockio_wallet, blockio):
    address = services.new_receiving_address(blockio_wallet, "alice")
    txid = blockio.receive(address.address, "0.4")
    assert update_confirmations(blockio_wallet.currency).discovered == 1
    blockio.confirm(2)
    assert update_confirmations(blockio_wallet.currency).credited == 1
    blockio.confirm(3)
    update_confirmations(blockio_wallet.currency)
    assert NetworkTransaction.objects.get(txid=txid).state == "closed"
    assert len(_deposits(txid)) == 1
    assert services.balance(address.account) == 40_000_000


def test_it_imports_then_broadcasts_and_the_books_match(blockio_wallet, blockio):
    blockio.receive(blockio.own_address("house"), "2", confirmations=6)  # held before management
    alice = services.user_account("alice", blockio_wallet.currency)
    assert imports.import_unaccounted_balance(blockio_wallet.pk, alice.pk).amount == 2 * BTC
    destination, _ = new_address()  # someone else's address
    send_external(alice, destination, 50_000_000)
    result = Broadcaster(blockio_wallet).run()
    broadcast = Broadcast.objects.get()
    assert (result.sent, broadcast.state, broadcast.fee) == (1, "broadcasted", blockio.fee)
    assert blockio.nonces == {broadcast.label: broadcast.txid}
    assert reconcile(blockio_wallet, save=False).unaccounted == 0  # node and books agree to the satoshi


def test_it_leaves_a_timed_out_withdraw_interrupted_then_settles_it_by_txid(blockio_wallet, blockio, settings,
                                                                            operator):
    settings.NODE_RPC_TIMEOUT = 1
    blockio.receive(blockio.own_address("house"), "1", confirmations=6)
    alice = services.user_account("alice", blockio_wallet.currency)
    imports.import_unaccounted_balance(blockio_wallet.pk, alice.pk)
    send_external(alice, new_address()[0], 10_000_000)
    blockio.fail_next("withdraw", "timeout")  # block.io sends, but the answer never arrives
    Broadcaster(blockio_wallet).run()
    broadcast = Broadcast.objects.get()
    assert broadcast.state == "opened" and list(interrupted_broadcasts()) == [broadcast]
    assert Broadcaster(blockio_wallet).run().sent == 0  # refuses while interrupted
    from tests.support import wait_until

    txid = wait_until(lambda: blockio.nonces.get(broadcast.label), what="block.io to finish the slow withdraw")
    from tests.support import grant

    close_as_broadcasted(broadcast, txid, grant(operator, "broadcasts.close_broadcast_by_hand"),
                         "found in block.io's dashboard")
    broadcast.refresh_from_db()
    assert broadcast.state == "closed_broadcasted" and broadcast.txid == txid
    assert blockio.count("withdraw") == 1


def test_it_finds_a_missed_deposit_by_rescan(blockio_wallet, blockio):
    address = services.new_receiving_address(blockio_wallet, "bob")
    for _ in range(30):  # more than a page of other receives
        blockio.receive(blockio.own_address(), "0.01", confirmations=1)
    txid = blockio.receive(address.address, "0.3", confirmations=1)
    for _ in range(30):
        blockio.receive(blockio.own_address(), "0.01", confirmations=1)
    result = rescan_wallet(blockio_wallet)
    assert result["txids"] == [txid]
    blockio.confirm(2)
    update_confirmations(blockio_wallet.currency)
    assert len(_deposits(txid)) == 1
