"""The Broadcaster on a real regtest node and PostgreSQL."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broadcasts.broadcaster import Broadcaster
from broadcasts.models import Broadcast, OutgoingTransaction
from broadcasts.selections import interrupted_broadcasts
from broadcasts.withdrawals import send_external
from ledger import services as ledger
from ledger.backends import NodeUnreachable, OutcomeUnknown
from ledger.backends.bitcoind import BitcoindBackend
from ledger.models import Account, NetworkTransaction, Transaction
from tests.broadcast_helpers import end_lease
from tests.support import SendOutcomeUnknown, credit_user, funded_wallet, make_wallet

pytestmark = pytest.mark.django_db(transaction=True)


class FeeLookupDown(BitcoindBackend):
    # A sendmany-style send (not signed first): its fee is known only by looking it up.
    signs_first = False

    def get_transaction(self, txid):
        raise NodeUnreachable("gettransaction: node went away (simulated)")


def hold_balance(wallet, *users):
    ids = [ledger.user_account(u, wallet.currency, Account.Code.WITHDRAW_LOCKED).pk for u in users]
    return sum(ledger.balances(ids).values())


def test_it_sends_the_wallets_queue_in_one_transaction_merging_addresses(btc, node, fresh_node):
    wallet, alice = funded_wallet(btc, fresh_node())
    bob = ledger.user_account("bob", btc, Account.Code.BALANCE)
    ledger.post(alice, bob, 10**8, "internal")
    a1, a2 = node.rpc("getnewaddress"), node.rpc("getnewaddress")
    send_external(alice, a1, 1_000_000)
    send_external(bob, a1, 2_000_000)  # two users, one address: one output
    send_external(alice, a2, 500_000)

    sent, fee = Broadcaster(wallet).run()

    broadcast = Broadcast.objects.get()
    assert (sent, broadcast.state) == (1, Broadcast.State.BROADCASTED)
    assert broadcast.outputs == {a1: 3_000_000, a2: 500_000}
    assert (broadcast.output_count, broadcast.transaction_count, broadcast.total) == (
        2,
        3,
        3_500_000,
    )
    info = wallet.get_backend().get_transaction(broadcast.txid)
    assert info.sent() == {a1: 3_000_000, a2: 500_000}
    # Signed first (issue 16): sendrawtransaction carries no comment; the txid was stored
    # before the send, and the fee with it.
    assert broadcast.label == f"cryptoadmin-broadcast-{broadcast.pk}" and broadcast.signed_first
    assert fee == broadcast.fee == broadcast.signed_fee == info.fee > 0
    assert set(OutgoingTransaction.objects.values_list("state", "broadcast")) == {
        ("broadcasted", broadcast.pk)
    }
    assert hold_balance(wallet, "alice") == hold_balance(wallet, "bob") == 0
    assert Transaction.objects.filter(kind="broadcasted").count() == 2  # one per user's 204
    network_tx = NetworkTransaction.objects.get(txid=broadcast.txid)
    assert (network_tx.type, network_tx.wallet, broadcast.network_transaction) == (
        "broadcast",
        wallet,
        network_tx,
    )
    assert (
        Transaction.objects.filter(kind="fee", amount=fee, network_transaction=network_tx).count()
        == 1
    )
    assert ledger.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)


def test_it_spends_an_imported_legacy_wallets_coins_held_on_labelled_addresses(btc, two_nodes):
    """A wallet brought under management with its coins on a labelled address (an account on
    this node) pays withdrawals: the node's accounts are gathered into the default one first."""
    from ledger.imports import import_unaccounted_balance
    from tests.support import pay_from_outside

    ours, outside = two_nodes
    pay_from_outside(ours, outside, ours.rpc("getnewaddress", "legacy"), "3", mine=1)
    assert ours.rpc("getbalance", "", 1) == 0  # the default account holds nothing of it
    wallet = make_wallet(btc, ours)
    alice = ledger.user_account("alice", btc, Account.Code.BALANCE)
    import_unaccounted_balance(wallet.pk, alice.pk)
    assert ledger.balances([alice.pk])[alice.pk] == 3 * 10**8

    send_external(alice, outside.rpc("getnewaddress"), 10**8)
    sent, fee = Broadcaster(wallet).run()

    broadcast = Broadcast.objects.get()
    assert (sent, broadcast.state, broadcast.last_error) == (1, Broadcast.State.BROADCASTED, "")
    # Signed first, fundrawtransaction picks from every coin whatever its account (no
    # `move` needed, so the legacy account's bookkeeping balance is left as it was).
    assert fee > 0
    assert ledger.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)
    # Nothing left: the next run sends nothing.
    assert tuple(Broadcaster(wallet).run()) == (0, 0)


def test_it_collects_only_its_own_wallets_queue(btc, node):
    mine, other = make_wallet(btc, node, name="mine"), make_wallet(btc, node, name="other")
    theirs = send_external(
        credit_user(other, "carol", 10**6), node.rpc("getnewaddress"), 10_000, wallet=other
    )

    result = Broadcaster(mine).run()

    assert (result.sent, Broadcast.objects.count()) == (0, 0)
    theirs.refresh_from_db()
    assert theirs.state == OutgoingTransaction.State.QUEUED
    assert Broadcaster(other).run().sent == 1
    assert Broadcast.objects.get().wallet == other


def test_it_puts_outgoing_back_in_the_queue_when_the_node_proves_nothing_was_sent(
    btc, node, fresh_node
):
    server = fresh_node()
    wallet, alice = funded_wallet(btc, server, blocks=101)  # 50 coins on the node
    credit_user(wallet, "alice", 50 * 10**8)  # the books promise more than the node has
    out = send_external(alice, node.rpc("getnewaddress"), 60 * 10**8)

    result = Broadcaster(wallet).run()

    failed = Broadcast.objects.get()
    out.refresh_from_db()
    assert (result.sent, failed.state) == (0, Broadcast.State.FAILED)
    assert "nsufficient" in failed.last_error
    assert (out.state, out.broadcast, out.attempts) == ("queued", None, 1)
    assert hold_balance(wallet, "alice") == 60 * 10**8  # still locked, not lost
    assert not Transaction.objects.filter(kind="broadcasted").exists()
    server.generate(1)  # one more coinbase matures: now the node can pay
    assert Broadcaster(wallet).run().sent == 1
    out.refresh_from_db()
    assert out.state == "broadcasted" and out.broadcast.state == Broadcast.State.BROADCASTED


def test_it_leaves_an_unknown_outcome_opened_and_refuses_the_wallet_until_closed(btc, node, wallet):
    out = send_external(credit_user(wallet, "dave", 10**6), node.rpc("getnewaddress"), 10_000)

    result = Broadcaster(wallet, backend=SendOutcomeUnknown(wallet)).run()

    broadcast = Broadcast.objects.get()
    assert result.refused and "INTERRUPTED" in result.message
    assert (
        broadcast.state == Broadcast.State.OPENED
        and "timeout after sending" in broadcast.last_error
    )
    # Until its lease is over the node may still answer: in flight, not interrupted.
    assert broadcast.in_flight and list(interrupted_broadcasts()) == []
    meanwhile = Broadcaster(wallet).run()
    assert not meanwhile.refused and "still sending" in meanwhile.message and meanwhile.sent == 0
    end_lease(broadcast)
    assert list(interrupted_broadcasts()) == [broadcast]
    again = Broadcaster(wallet).run()
    assert again.refused and f"#{broadcast.pk}" in again.message and again.sent == 0
    out.refresh_from_db()
    assert out.state == OutgoingTransaction.State.BROADCASTING
    assert wallet.get_backend().find_by_comment(broadcast.label) == []


def test_it_records_the_txid_when_the_fee_lookup_fails_and_fills_the_fee_in_later(
    btc, node, fresh_node
):
    wallet, alice = funded_wallet(btc, fresh_node())
    send_external(alice, node.rpc("getnewaddress"), 1_000_000)

    result = Broadcaster(wallet, backend=FeeLookupDown(wallet)).run()

    broadcast = Broadcast.objects.get()
    assert (result.sent, result.fee, broadcast.state, broadcast.fee) == (1, 0, "broadcasted", None)
    assert len(broadcast.txid) == 64
    assert not Transaction.objects.filter(kind="fee").exists()
    later = Broadcaster(wallet).run()
    broadcast.refresh_from_db()
    assert (
        later.fee == broadcast.fee == wallet.get_backend().get_transaction(broadcast.txid).fee > 0
    )
    assert Transaction.objects.get(kind="fee").amount == broadcast.fee
    assert ledger.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)


def test_it_uses_the_same_number_of_queries_for_5_and_60_outgoing(btc, node, wallet):
    counts = []
    for n in (5, 60):
        addresses = [node.rpc("getnewaddress") for _ in range(n // 5)]
        for i in range(n):
            account = credit_user(wallet, f"user-{n}-{i % 7}", 10**6)
            send_external(account, addresses[i % len(addresses)], 1000 + i)
        with CaptureQueriesContext(connection) as queries:
            assert Broadcaster(wallet).run().sent == 1
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_it_sends_a_broadcast_left_collected_by_a_crash_before_it_was_opened(btc, node, wallet):
    send_external(credit_user(wallet, "jo", 10**6), node.rpc("getnewaddress"), 20_000)
    leftover = Broadcaster(wallet).collect()  # then the process died: nothing opened, nothing sent
    send_external(credit_user(wallet, "kim", 10**6), node.rpc("getnewaddress"), 30_000)

    assert Broadcaster(wallet).run().sent == 1

    leftover.refresh_from_db()
    assert leftover.state == Broadcast.State.BROADCASTED and leftover.transaction_count == 1
    assert Broadcaster(wallet).run().sent == 1  # kim's, in a broadcast of its own
    assert (
        Broadcast.objects.count() == 2
        and not OutgoingTransaction.objects.exclude(state="broadcasted").exists()
    )


def test_it_spends_coins_that_arrived_at_users_receiving_addresses(btc, two_nodes):
    """A wallet whose only coins are users' deposits can pay them out. (Receiving addresses
    once carried labels; on this node labels are accounts and sendmany "" spends only the
    default account, so every withdrawal failed with 'Account has insufficient funds'.)"""
    from ledger.confirmations.cycle import poll_wallet
    from tests.support import pay_from_outside

    ours, outside = two_nodes
    wallet = make_wallet(btc, ours)
    address = ledger.new_receiving_address(wallet, "alice")
    pay_from_outside(ours, outside, address.address, "2", mine=btc.crediting_threshold)
    poll_wallet(wallet)
    alice = ledger.user_account("alice", btc, Account.Code.BALANCE)
    assert ledger.balances([alice.pk])[alice.pk] == 2 * 10**8

    send_external(alice, outside.rpc("getnewaddress"), 50_000_000)
    sent, fee = Broadcaster(wallet).run()

    broadcast = Broadcast.objects.get()
    assert (sent, broadcast.state, broadcast.last_error) == (1, Broadcast.State.BROADCASTED, "")
    assert ledger.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)


class PaysThenLosesTheReply(BitcoindBackend):
    """sendmany reaches the node and pays; its answer never comes back. A sendmany-style
    backend (not signed first): the late-reply paths that a person's close can meet."""

    signs_first = False

    def send_many(self, outputs, comment, **kwargs):
        super().send_many(outputs, comment, **kwargs)
        raise OutcomeUnknown("connection lost after sending (simulated)")


class NodeNotCaughtUp(BitcoindBackend):
    """The operator's look at the node wallet before it recorded the send."""

    def find_by_comment(self, comment):
        return []


def test_it_takes_back_what_a_wrong_never_left_close_requeued_once_the_send_shows_up(
    btc, node, fresh_node, operator
):
    from broadcasts.closing import close_as_never_left
    from tests.support import grant

    wallet, alice = funded_wallet(btc, fresh_node())
    address = node.rpc("getnewaddress")
    out = send_external(alice, address, 2_500_000)
    Broadcaster(wallet, backend=PaysThenLosesTheReply(wallet)).run()
    broadcast = end_lease(Broadcast.objects.get())
    close_as_never_left(
        broadcast,
        grant(operator, "broadcasts.close_broadcast_by_hand"),
        "node showed nothing",
        backend=NodeNotCaughtUp(wallet),
    )
    out.refresh_from_db()
    assert out.state == "queued"

    result = Broadcaster(wallet).run()

    broadcast.refresh_from_db()
    out.refresh_from_db()
    assert result.sent == 0 and Broadcast.objects.count() == 1  # nothing collected again
    assert (broadcast.state, broadcast.needs_attention, out.state) == (
        "broadcasted",
        True,
        "broadcasted",
    )
    assert "LATE REPLY" in broadcast.last_error and broadcast.close_method == "never_left"
    sends = [e for e in wallet.get_backend().list_transactions(1000) if e["category"] == "send"]
    assert [e["txid"] for e in sends] == [broadcast.txid]
    Broadcaster(wallet).run()
    broadcast.refresh_from_db()
    assert (
        broadcast.fee == wallet.get_backend().get_transaction(broadcast.txid).fee > 0
    )  # filled in
    assert ledger.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)


class WalletListNotCaughtUp(BitcoindBackend):
    def list_transactions(self, count=1000, skip=0):
        return []


def test_it_flags_a_late_payment_whose_outgoing_were_already_sent_again_and_books_nothing_twice(
    btc, node, fresh_node, operator
):
    from broadcasts.closing import close_as_never_left
    from broadcasts.settlement import record_late_reply
    from tests.support import grant

    wallet, alice = funded_wallet(btc, fresh_node())
    out = send_external(alice, node.rpc("getnewaddress"), 1_500_000)
    Broadcaster(wallet, backend=PaysThenLosesTheReply(wallet)).run()
    first = end_lease(Broadcast.objects.get())
    close_as_never_left(
        first,
        grant(operator, "broadcasts.close_broadcast_by_hand"),
        "node showed nothing",
        backend=NodeNotCaughtUp(wallet),
    )
    assert (
        Broadcaster(wallet, backend=WalletListNotCaughtUp(wallet)).run().sent == 1
    )  # paid a second time
    [txid] = [
        e["txid"]
        for e in wallet.get_backend().list_transactions(1000)
        if e.get("comment") == first.label and e["category"] == "send"
    ]

    note = record_late_reply(first.pk, txid)

    first.refresh_from_db()
    out.refresh_from_db()
    assert "ALREADY SENT AGAIN" in note and f"#{out.pk}" in note
    assert (first.state, first.txid, first.needs_attention) == ("closed_failed", txid, True)
    assert out.state == "broadcasted" and out.broadcast_id != first.pk
    assert (
        Transaction.objects.filter(kind="broadcasted").count() == 1
    )  # booked once, by the second broadcast
    assert tuple(Broadcaster(wallet).run()) == (0, 0)  # the watch finds nothing more to do
