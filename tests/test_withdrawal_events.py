"""Withdrawal events, written in the transaction of each state change: queued or awaiting
approval, approved, rejected / cancelled (and returned), broadcasted with txid and fee share,
back in the queue after a failed broadcast, needs attention."""

import pytest
from django.utils import timezone

from broadcasts.approvals import approve, cancel, reject
from broadcasts.broadcaster import Broadcaster
from broadcasts.models import Broadcast, OutgoingTransaction, WithdrawalRule
from broadcasts.settlement import fail_broadcast
from broadcasts.withdrawals import send_external
from events.models import Event
from ledger.confirmations.entry_points import update_confirmations
from tests.support import credit_user, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(wallet):
    return credit_user(wallet, "alice", 10**8)


@pytest.fixture
def approver(django_user_model):
    return grant(
        django_user_model.objects.create_user("approver", password="pw", is_staff=True),
        "broadcasts.approve_outgoingtransaction",
        "broadcasts.cancel_outgoingtransaction",
    )


def types(out):
    rows = Event.objects.filter(object_type="withdrawal", object_id=str(out.pk)).order_by(
        "sequence"
    )
    return [e.type for e in rows]


def test_it_emits_each_decision_with_the_withdrawal(wallet, alice, node, approver):
    WithdrawalRule.objects.create(currency=wallet.currency, approval_above=1_000_000)
    big = send_external(alice, node.rpc("getnewaddress"), 2_000_000)
    other = send_external(alice, node.rpc("getnewaddress"), 3_000_000)
    small = send_external(alice, node.rpc("getnewaddress"), 500_000)
    approve(big, approver)
    reject(other, approver, "unknown address")
    cancel(small, approver, "asked by the user")
    assert types(big) == ["withdrawal.awaiting_approval", "withdrawal.approved"]
    assert types(other) == [
        "withdrawal.awaiting_approval",
        "withdrawal.rejected",
        "withdrawal.returned",
    ]
    assert types(small) == ["withdrawal.queued", "withdrawal.cancelled", "withdrawal.returned"]
    event = Event.objects.get(object_id=str(big.pk), type="withdrawal.approved")
    assert event.data["amount"] == "0.02000000" and event.data["state"] == "queued"
    assert event.data["user"] == "alice" and event.data["currency"] == "BTC"


def test_it_emits_broadcasted_with_the_txid_and_fee_share(wallet, alice, node):
    out = send_external(alice, node.rpc("getnewaddress"), 1_000_000)
    Broadcaster(wallet).run()
    broadcast = Broadcast.objects.get()
    assert types(out) == ["withdrawal.queued", "withdrawal.broadcasted"]
    data = Event.objects.get(type="withdrawal.broadcasted").data
    assert data["txid"] == broadcast.txid and data["state"] == "broadcasted"
    fee = broadcast.fee if broadcast.fee is not None else broadcast.signed_fee
    assert data["fee"] == wallet.currency.format(fee * out.amount // broadcast.total)
    node.generate(wallet.currency.polling_threshold)
    update_confirmations(wallet.currency)  # our send's row closes at the threshold
    assert types(out) == ["withdrawal.queued", "withdrawal.broadcasted", "withdrawal.confirmed"]
    update_confirmations(wallet.currency)
    assert types(out)[-1] == "withdrawal.confirmed" and len(types(out)) == 3  # once


def test_it_emits_needs_attention_over_the_fee_cap(wallet, alice, node):
    WithdrawalRule.objects.create(currency=wallet.currency, max_fee=1)
    out = send_external(alice, node.rpc("getnewaddress"), 1_000_000)
    Broadcaster(wallet).run()
    assert types(out) == ["withdrawal.queued", "withdrawal.needs_attention"]
    assert "fee cap" in Event.objects.get(type="withdrawal.needs_attention").data["reason"]


def test_it_emits_queued_again_when_a_broadcast_fails(wallet, alice, node):
    out = send_external(alice, node.rpc("getnewaddress"), 1_000_000)
    broadcast = Broadcast.objects.create(
        wallet=wallet, state="opened", opened_at=timezone.now(), label="cryptoadmin-broadcast-t"
    )
    OutgoingTransaction.objects.filter(pk=out.pk).update(state="broadcasting", broadcast=broadcast)
    fail_broadcast(broadcast, "node down")
    assert types(out) == ["withdrawal.queued", "withdrawal.queued"]
