"""The tracker, broadcaster, rescan and import work unchanged on a block.io wallet, and an
interrupted withdraw is settled safely (nonce, sent transactions, inputs of the wallet)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from broadcasts.broadcaster import Broadcaster
from broadcasts.closing import close_as_broadcasted, close_as_never_left
from broadcasts.models import Broadcast
from broadcasts.selections import interrupted_broadcasts
from broadcasts.withdrawals import send_external
from cryptoadmin.errors import CloseRefused
from ledger import imports, services
from ledger.confirmations.entry_points import update_confirmations
from ledger.models import NetworkTransaction, Transaction
from ledger.reconcile import reconcile
from ledger.rescan import rescan_wallet
from tests.blockio_server import new_address
from tests.broadcast_helpers import end_lease
from tests.support import grant, wait_until

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
    assert broadcast.nonce and blockio.nonces == {broadcast.nonce: broadcast.txid}
    assert reconcile(blockio_wallet).unaccounted == 0  # node and books agree to the satoshi


def test_it_leaves_a_timed_out_withdraw_interrupted_then_settles_it_by_txid(
    blockio_wallet, blockio, settings, operator
):
    settings.NODE_RPC_TIMEOUT = 1
    blockio.receive(blockio.own_address("house"), "1", confirmations=6)
    alice = services.user_account("alice", blockio_wallet.currency)
    imports.import_unaccounted_balance(blockio_wallet.pk, alice.pk)
    send_external(alice, new_address()[0], 10_000_000)
    blockio.fail_next("withdraw", "timeout")  # block.io sends, but the answer never arrives
    Broadcaster(blockio_wallet).run()
    broadcast = Broadcast.objects.get()
    end_lease(broadcast)
    broadcast.opened_at -= timedelta(hours=1)  # past the nonce window: only a person settles it now
    Broadcast.objects.filter(pk=broadcast.pk).update(opened_at=broadcast.opened_at)
    assert broadcast.state == "opened" and list(interrupted_broadcasts()) == [broadcast]
    assert Broadcaster(blockio_wallet).run().sent == 0  # refuses while interrupted
    from tests.support import grant, wait_until

    txid = wait_until(
        lambda: blockio.nonces.get(broadcast.nonce), what="block.io to finish the slow withdraw"
    )

    close_as_broadcasted(
        broadcast,
        txid,
        grant(operator, "broadcasts.close_broadcast_by_hand"),
        "found in block.io's dashboard",
    )
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


def _funded(blockio_wallet, blockio, amount="1"):
    blockio.receive(blockio.own_address("house"), amount, confirmations=6)
    alice = services.user_account("alice", blockio_wallet.currency)
    imports.import_unaccounted_balance(blockio_wallet.pk, alice.pk)
    return alice


def _interrupted(blockio_wallet, blockio, failure, settings):
    settings.NODE_RPC_TIMEOUT = 1
    alice = _funded(blockio_wallet, blockio)
    destination = new_address()[0]
    send_external(alice, destination, 10_000_000)
    blockio.fail_next("withdraw", failure)
    result = Broadcaster(blockio_wallet).run()
    broadcast = Broadcast.objects.get()
    assert result.refused and broadcast.state == "opened" and broadcast.in_flight
    return broadcast, destination


def test_it_credits_a_segwit_deposit(blockio_wallet, blockio):
    address = services.new_receiving_address(blockio_wallet, "carol")
    txid = blockio.receive(address.address, "0.7", confirmations=3, segwit=True)
    update_confirmations(blockio_wallet.currency)
    update_confirmations(blockio_wallet.currency)
    assert len(_deposits(txid)) == 1
    assert services.balance(address.account) == 70_000_000


def test_it_puts_a_withdraw_that_could_not_connect_back_in_the_queue(
    blockio_wallet, blockio, settings
):
    import socket

    from ledger.backends.blockio import BlockIoBackend

    settings.NODE_RPC_TIMEOUT = 1
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(
        listener.getsockname()
    )  # the accept queue is full from now on

    class CannotConnect(BlockIoBackend):
        def send_many(self, outputs, comment, **kwargs):
            self.base_url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v2/"
            return super().send_many(outputs, comment, **kwargs)

    alice = _funded(blockio_wallet, blockio)
    send_external(alice, new_address()[0], 10_000_000)
    try:
        result = Broadcaster(blockio_wallet, backend=CannotConnect(blockio_wallet)).run()
    finally:
        filler.close()
        listener.close()
    failed = Broadcast.objects.get()
    assert (result.sent, failed.state) == (0, "failed") and "nothing sent" in failed.last_error
    assert not interrupted_broadcasts().exists()
    assert Broadcaster(blockio_wallet).run().sent == 1
    assert len(blockio.sent) == 1


def test_it_settles_a_timed_out_withdraw_by_repeating_its_nonce_and_pays_once(
    blockio_wallet, blockio, settings
):
    broadcast, destination = _interrupted(blockio_wallet, blockio, "timeout", settings)
    assert (
        blockio.nonces == {} and broadcast.nonce
    )  # committed before the call; block.io still working
    txid = wait_until(
        lambda: blockio.nonces.get(broadcast.nonce), what="block.io to finish the slow withdraw"
    )
    assert Broadcaster(blockio_wallet).run().sent == 0  # the lease still runs: nobody repeats it
    assert blockio.count("withdraw") == 1
    end_lease(broadcast)

    result = Broadcaster(
        blockio_wallet
    ).run()  # repeats it: block.io refuses the nonce, the send is found

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.txid, broadcast.closed_by) == ("broadcasted", txid, None)
    assert result.sent == 1 and blockio.count("withdraw") == 2 and len(blockio.sent) == 1
    assert broadcast.fee == blockio.fee
    assert reconcile(blockio_wallet).unaccounted == 0


def test_it_pays_once_by_repeating_the_nonce_when_the_first_withdraw_never_arrived(
    blockio_wallet, blockio, settings
):
    broadcast, destination = _interrupted(blockio_wallet, blockio, "drop", settings)
    assert blockio.sent == []
    end_lease(broadcast)

    Broadcaster(blockio_wallet).run()

    broadcast.refresh_from_db()
    assert broadcast.state == "broadcasted" and blockio.nonces == {broadcast.nonce: broadcast.txid}
    assert [s["amounts"] for s in blockio.sent] == [[(destination, 10_000_000)]]
    assert Broadcaster(blockio_wallet).run().sent == 0
    assert reconcile(blockio_wallet).unaccounted == 0


def test_it_lets_an_operator_retry_with_the_same_nonce_from_the_close_page(
    blockio_wallet, blockio, settings, client, operator
):
    broadcast, destination = _interrupted(blockio_wallet, blockio, "drop", settings)
    grant(operator, "broadcasts.view_broadcast", "broadcasts.close_broadcast_by_hand")
    client.force_login(operator)
    url = reverse("admin:broadcasts_broadcast_close", args=[broadcast.pk])
    early = client.post(url, {"method": "same_nonce", "reason": "block.io timed out"})
    assert early.status_code == 200 and "still sending" in early.content.decode()
    end_lease(broadcast)
    refused = client.post(url, {"method": "never_left", "reason": "nothing in the dashboard"})
    assert "Retry with the same nonce" in refused.content.decode()
    assert Broadcast.objects.get().state == "opened"

    done = client.post(url, {"method": "same_nonce", "reason": "block.io timed out"})

    assert done.status_code == 302
    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.close_method, broadcast.closed_by) == (
        "closed_broadcasted",
        "same_nonce",
        operator,
    )
    assert len(blockio.sent) == 1 and broadcast.txid == blockio.sent[0]["txid"]


def test_it_settles_by_hand_past_the_nonce_window_and_only_with_the_wallets_own_send(
    blockio_wallet, blockio, settings, operator
):
    broadcast, destination = _interrupted(blockio_wallet, blockio, "timeout", settings)
    txid = wait_until(
        lambda: blockio.nonces.get(broadcast.nonce), what="block.io to finish the slow withdraw"
    )
    end_lease(broadcast)
    Broadcast.objects.filter(pk=broadcast.pk).update(
        opened_at=broadcast.opened_at - timedelta(hours=1)
    )
    blockio.clock = lambda: (
        __import__("time").time() + 3600
    )  # an hour on: block.io would take the nonce again
    closer = grant(operator, "broadcasts.close_broadcast_by_hand")

    assert Broadcaster(blockio_wallet).run().refused  # no repeat past the window
    assert blockio.count("withdraw") == 1
    with pytest.raises(CloseRefused, match="it left"):
        close_as_never_left(broadcast, closer, "cannot see it")  # its send is listed
    theirs = blockio.foreign_payment({destination: 10_000_000})
    with pytest.raises(CloseRefused, match="does not spend this wallet's coins"):
        close_as_broadcasted(broadcast, theirs, closer, "same outputs")

    close_as_broadcasted(broadcast, txid, closer, "found in block.io's sent list")

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.txid) == ("closed_broadcasted", txid) and len(
        blockio.sent
    ) == 1


def test_it_closes_as_never_left_past_the_nonce_window_when_nothing_was_sent(
    blockio_wallet, blockio, settings, operator
):
    broadcast, destination = _interrupted(blockio_wallet, blockio, "drop", settings)
    end_lease(broadcast)
    closer = grant(operator, "broadcasts.close_broadcast_by_hand")
    with pytest.raises(CloseRefused, match="Retry with the same nonce"):
        close_as_never_left(broadcast, closer, "too early for that")
    Broadcast.objects.filter(pk=broadcast.pk).update(
        opened_at=broadcast.opened_at - timedelta(hours=1)
    )

    close_as_never_left(broadcast, closer, "nothing sent since it opened")

    assert Broadcast.objects.get().state == "closed_failed"
    assert Broadcaster(blockio_wallet).run().sent == 1
    assert len(blockio.sent) == 1


def test_it_fills_in_a_fee_block_io_never_replied_from_the_wallets_inputs(
    blockio_wallet, blockio, settings
):
    broadcast, destination = _interrupted(blockio_wallet, blockio, "timeout", settings)
    txid = wait_until(
        lambda: blockio.nonces.get(broadcast.nonce), what="block.io to finish the slow withdraw"
    )
    # Settled without block.io's reply (as a late reply or by hand would): the fee is unknown.
    Broadcast.objects.filter(pk=broadcast.pk).update(state="broadcasted", txid=txid)

    Broadcaster(blockio_wallet).run()

    broadcast.refresh_from_db()
    assert broadcast.fee == blockio.fee
