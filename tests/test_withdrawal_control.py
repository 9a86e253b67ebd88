"""Withdrawals an operator controls (issue 15): the currency's rules, four-eyes approval,
rejection and cancellation giving the money back, and a queue one refused output cannot wedge."""

import threading

import pytest
from django.db import connection

from broadcasts.approvals import approve, cancel, reject
from broadcasts.broadcaster import Broadcaster
from broadcasts.errors import DecisionError, OutgoingError
from broadcasts.models import Broadcast, OutgoingTransaction, WithdrawalRule
from broadcasts.selections import outgoing_needing_attention
from broadcasts.settlement import fail_broadcast, record_late_reply
from broadcasts.withdrawals import send_external
from cryptoadmin import faults
from ledger import services as ledger
from ledger.backends import InsufficientFunds
from ledger.backends.bitcoind import BitcoindBackend
from ledger.models import Account, Transaction
from tests.support import credit_user, funded_wallet, grant, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

Q = OutgoingTransaction.State


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


def rule(currency, **kwargs):
    return WithdrawalRule.objects.create(currency=currency, **kwargs)


def balances(currency, user_id):
    a201 = ledger.user_account(user_id, currency, Account.Code.BALANCE)
    a204 = ledger.user_account(user_id, currency, Account.Code.WITHDRAW_LOCKED)
    got = ledger.balances([a201.pk, a204.pk])
    return got[a201.pk], got[a204.pk]


def test_it_refuses_an_amount_below_the_minimum_at_queue_time(wallet, alice, node):
    rule(wallet.currency, minimum_amount=10_000)
    with pytest.raises(
        OutgoingError, match=r"minimum BTC withdrawal is 0\.00010000 BTC; 0\.00009999 BTC requested"
    ):
        send_external(alice, node.rpc("getnewaddress"), 9_999)
    assert not OutgoingTransaction.objects.exists()
    assert balances(wallet.currency, "alice") == (10**8, 0)
    assert send_external(alice, node.rpc("getnewaddress"), 10_000).state == Q.QUEUED


def test_it_holds_a_withdrawal_above_the_threshold_until_another_person_approves(
    btc, fresh_node, node, operator, approver
):
    wallet, alice = funded_wallet(btc, fresh_node())
    rule(btc, approval_above=50_000_000)
    small = send_external(alice, node.rpc("getnewaddress"), 50_000_000, created_by=operator)
    large = send_external(alice, node.rpc("getnewaddress"), 50_000_001, created_by=operator)
    assert (small.state, large.state) == (Q.QUEUED, Q.AWAITING_APPROVAL)
    assert "above 0.50000000 BTC" in large.approval_reason

    Broadcaster(wallet).run()  # the broadcaster leaves the awaiting one alone
    small.refresh_from_db(), large.refresh_from_db()
    assert (small.state, large.state, large.broadcast) == (Q.BROADCASTED, Q.AWAITING_APPROVAL, None)

    approve(large, approver)
    assert (large.state, large.approved_by, large.approved_at is not None) == (
        Q.QUEUED,
        approver,
        True,
    )
    Broadcaster(wallet).run()
    large.refresh_from_db()
    assert large.state == Q.BROADCASTED
    assert Broadcast.objects.filter(state="broadcasted").count() == 2


def test_it_refuses_approval_by_the_person_who_queued_it_superuser_included(
    wallet, alice, node, superuser, approver
):
    rule(wallet.currency, approval_above=0)
    by_root = send_external(alice, node.rpc("getnewaddress"), 1_000_000, created_by=superuser)
    with pytest.raises(DecisionError, match="queued by you: another person must approve it"):
        approve(by_root, superuser)
    by_approver = send_external(alice, node.rpc("getnewaddress"), 1_000_000, created_by=approver)
    with pytest.raises(DecisionError, match="queued by you"):
        approve(by_approver, approver)
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {Q.AWAITING_APPROVAL}
    approve(by_root, approver)  # another person may
    by_root.refresh_from_db()
    assert by_root.state == Q.QUEUED


def test_it_refuses_approval_without_the_permission(wallet, alice, node, operator, viewer):
    rule(wallet.currency, approval_above=0)
    out = send_external(alice, node.rpc("getnewaddress"), 1_000_000, created_by=operator)
    with pytest.raises(DecisionError, match="permission to approve"):
        approve(out, viewer)
    with pytest.raises(DecisionError, match="permission to reject"):
        reject(out, viewer, "no")
    with pytest.raises(DecisionError, match="permission to cancel outgoing"):
        cancel(out, viewer, "no")
    out.refresh_from_db()
    assert out.state == Q.AWAITING_APPROVAL


def test_it_holds_withdrawals_past_the_users_daily_total(wallet, alice, node):
    rule(wallet.currency, daily_limit=30_000_000)
    first = send_external(alice, node.rpc("getnewaddress"), 20_000_000)
    second = send_external(
        alice, node.rpc("getnewaddress"), 10_000_000
    )  # exactly the limit: passes
    third = send_external(alice, node.rpc("getnewaddress"), 1)
    assert [o.state for o in (first, second, third)] == [Q.QUEUED, Q.QUEUED, Q.AWAITING_APPROVAL]
    assert "would reach 0.30000001 BTC, above the daily 0.30000000 BTC" in third.approval_reason
    bob = credit_user(wallet, "bob", 10**8)  # per user: bob is not held by alice's total
    assert send_external(bob, node.rpc("getnewaddress"), 30_000_000).state == Q.QUEUED


def test_it_does_not_count_returned_withdrawals_in_the_daily_total(wallet, alice, node, approver):
    rule(wallet.currency, daily_limit=30_000_000)
    first = send_external(alice, node.rpc("getnewaddress"), 30_000_000)
    cancel(first, approver, "user asked")
    assert send_external(alice, node.rpc("getnewaddress"), 30_000_000).state == Q.QUEUED


def test_it_gives_the_money_back_on_reject_with_who_when_why(
    wallet, alice, node, operator, approver, balance_cache
):
    rule(wallet.currency, approval_above=0)
    out = send_external(alice, node.rpc("getnewaddress"), 40_000_000, created_by=operator)
    assert balance_cache.get_balance("alice", "BTC", 201) == 60_000_000
    assert balance_cache.get_balance("alice", "BTC", 204) == 40_000_000
    with pytest.raises(DecisionError, match="give a reason"):
        reject(out, approver, "  ")
    reject(out, approver, "unknown address")
    assert (out.state, out.closed_by, out.close_reason) == (Q.REJECTED, approver, "unknown address")
    entry = out.return_entry
    assert (entry.kind, entry.amount, entry.source, entry.destination) == (
        Transaction.Kind.RETURNED,
        40_000_000,
        out.hold_account,
        out.account,
    )
    assert balances(wallet.currency, "alice") == (10**8, 0)
    # The cache (and GraphQL, which reads it) sees 204 -> 201 at once.
    assert balance_cache.get_balance("alice", "BTC", 201) == 10**8
    assert balance_cache.get_balance("alice", "BTC", 204) == 0
    with pytest.raises(DecisionError, match=r"is rejected \(returned\): it cannot be cancelled"):
        cancel(out, approver, "again")
    assert Transaction.objects.filter(kind="returned").count() == 1


def test_it_keeps_the_money_on_204_when_the_return_dies_before_commit(
    wallet, alice, node, approver
):
    out = send_external(alice, node.rpc("getnewaddress"), 40_000_000)
    with (
        faults.armed({"outgoing.before_return_commit": "raise"}),
        pytest.raises(faults.InjectedFault),
    ):
        cancel(out, approver, "user asked")
    out.refresh_from_db()
    assert (out.state, out.return_entry) == (Q.QUEUED, None)
    assert balances(wallet.currency, "alice") == (60_000_000, 40_000_000)
    assert not Transaction.objects.filter(kind="returned").exists()


def _race(*actions):
    """Run the actions at once in threads, each on its own database connection (the point is
    the conditional UPDATE on the row, which PostgreSQL serialises across connections)."""
    barrier = threading.Barrier(len(actions))
    outcomes = [None] * len(actions)

    def runner(i, action):
        try:
            barrier.wait(10)
            outcomes[i] = ("ok", action())
        except Exception as exc:  # noqa: BLE001 - the loser's message is the outcome
            outcomes[i] = ("refused", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_it_lets_one_of_approve_and_cancel_win_when_they_race(
    wallet, alice, node, operator, approver, django_user_model
):
    canceller = grant(
        django_user_model.objects.create_user("canceller", is_staff=True),
        "broadcasts.cancel_outgoingtransaction",
    )
    rule(wallet.currency, approval_above=0)
    for _ in range(5):
        out = send_external(alice, node.rpc("getnewaddress"), 1_000_000, created_by=operator)
        with faults.armed({"outgoing.before_return_update": "pause:0.2"}):
            # Each person acts on the row as their page showed it: awaiting approval.
            seen_a, seen_b = (OutgoingTransaction.objects.get(pk=out.pk) for _ in range(2))
            outcomes = _race(
                lambda a=seen_a: approve(a, approver),
                lambda b=seen_b: cancel(b, canceller, "race"),
            )
        kinds = sorted(k for k, _ in outcomes)
        assert kinds == ["ok", "refused"], outcomes
        loser = next(v for k, v in outcomes if k == "refused")
        assert isinstance(loser, DecisionError) and "someone acted first" in str(loser)
        out.refresh_from_db()
        assert out.state in (Q.QUEUED, Q.CANCELLED)
        assert (out.return_entry is not None) == (out.state == Q.CANCELLED)
    returned = Transaction.objects.filter(kind="returned").count()
    assert returned == OutgoingTransaction.objects.filter(state=Q.CANCELLED).count()
    queued = OutgoingTransaction.objects.filter(state=Q.QUEUED).count()
    assert balances(wallet.currency, "alice") == (10**8 - queued * 1_000_000, queued * 1_000_000)


def _money_once(wallet, out):
    """The amount is in exactly one place: sent (broadcasted entry) or back on 201, never both."""
    out.refresh_from_db()
    sent = out.state == Q.BROADCASTED
    returned = Transaction.objects.filter(kind="returned").count()
    a201, a204 = balances(wallet.currency, "alice")
    assert a204 == 0
    if sent:
        assert (returned, a201) == (0, 10**8 - out.amount)
    else:
        assert (out.state, returned, a201) == (Q.CANCELLED, 1, 10**8)
    return sent


@pytest.mark.parametrize("first", ["broadcaster", "cancel"])
def test_it_sends_or_returns_never_both_when_cancel_races_the_broadcaster(
    btc, fresh_node, node, approver, first
):
    """Two threads, each on its own connection: the first is parked inside its step (the
    broadcaster after collecting, the cancel before its commit) while the other acts."""
    wallet, alice = funded_wallet(btc, fresh_node())
    ledger.post(alice, credit_user(wallet, "rest", 1), ledger.balance(alice) - 10**8, "internal")
    out = send_external(alice, node.rpc("getnewaddress"), 25_000_000)
    actions = {
        "broadcaster": lambda: Broadcaster(wallet).run(),
        "cancel": lambda: cancel(out, approver, "race"),
    }
    pause = {"broadcaster": "broadcast.after_collect", "cancel": "outgoing.before_return_commit"}[
        first
    ]
    second = "cancel" if first == "broadcaster" else "broadcaster"
    outcomes = {}

    def runner():
        try:
            outcomes[first] = ("ok", actions[first]())
        except Exception as exc:  # noqa: BLE001
            outcomes[first] = ("refused", exc)
        finally:
            connection.close()

    with faults.armed({pause: "pause:2"}) as reached:
        thread = threading.Thread(target=runner)
        thread.start()
        wait_until(lambda: reached[pause] > 0, what=pause)
        try:
            outcomes[second] = ("ok", actions[second]())
        except DecisionError as exc:
            outcomes[second] = ("refused", exc)
        thread.join(30)
    sent = _money_once(wallet, out)
    assert sent == (first == "broadcaster")
    if sent:
        assert outcomes["cancel"][0] == "refused" and "in a broadcast now" in str(
            outcomes["cancel"][1]
        )
    else:
        assert outcomes["cancel"][0] == "ok"
        assert outcomes["broadcaster"][1].message.endswith("nothing to send")
        assert not Broadcast.objects.exists()


class CoreDustPolicy(BitcoindBackend):
    """The regtest node here (Bitcoin SV) has no dust limit; Bitcoin Core refuses an output
    below 546 satoshis with error -6 "Transaction amount too small", before sending anything.
    This applies that policy in front of the real node."""

    def send_many(self, outputs, comment, **kwargs):
        small = sorted(a for a, v in outputs.items() if v < 546)
        if small:
            raise InsufficientFunds(f"sendmany: Transaction amount too small ({small[0]})", code=-6)
        return super().send_many(outputs, comment, **kwargs)

    def build_signed(self, outputs, **kwargs):
        # Signed first (issue 16): Core's fundrawtransaction refuses dust the same way (-4).
        small = sorted(a for a, v in outputs.items() if v < 546)
        if small:
            raise InsufficientFunds(
                f"fundrawtransaction: Transaction amount too small ({small[0]})", code=-4
            )
        return super().build_signed(outputs, **kwargs)


def test_it_sends_the_others_when_one_output_is_refused_then_moves_it_to_attention(
    btc, fresh_node, node
):
    wallet, alice = funded_wallet(btc, fresh_node())
    backend = CoreDustPolicy(wallet)
    good = [send_external(alice, node.rpc("getnewaddress"), 1_000_000 * (i + 1)) for i in range(4)]
    dust = send_external(alice, node.rpc("getnewaddress"), 1)  # refused by the node as dust
    good.append(send_external(alice, node.rpc("getnewaddress"), 7_000_000))

    result = Broadcaster(wallet, backend).run()

    for out in good:
        out.refresh_from_db()
        assert out.state == Q.BROADCASTED
    dust.refresh_from_db()
    assert (dust.state, dust.refusals) == (Q.QUEUED, 1)
    assert "too small" in dust.last_error.lower()
    assert result.sent >= 1 and f"outgoing #{dust.pk} refused" in result.message
    sent_outputs = {}
    for b in Broadcast.objects.filter(state="broadcasted"):
        sent_outputs.update(wallet.get_backend().get_transaction(b.txid).sent())
    assert sent_outputs == {o.address: o.amount for o in good}

    Broadcaster(wallet, backend).run()
    dust.refresh_from_db()
    assert (dust.state, dust.refusals) == (Q.QUEUED, 2)
    result = Broadcaster(wallet, backend).run()
    dust.refresh_from_db()
    assert (dust.state, dust.refusals) == (Q.NEEDS_ATTENTION, 3)
    assert "NEEDS ATTENTION" in result.message
    assert (
        Broadcaster(wallet, backend).run().message.endswith("nothing to send")
    )  # out of the queue
    assert list(outgoing_needing_attention()) == [dust]
    # Still on 204 until a person cancels it: then back on 201.
    hold = ledger.user_account("alice", btc, Account.Code.WITHDRAW_LOCKED)
    assert ledger.balance(hold) == 1
    assert ledger.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)


def test_it_sends_what_the_balance_covers_oldest_first_and_says_so(btc, fresh_node, node):
    wallet, alice = funded_wallet(btc, fresh_node())
    balance = ledger.balance(alice)
    old = send_external(alice, node.rpc("getnewaddress"), balance // 3)
    mid = send_external(alice, node.rpc("getnewaddress"), balance // 3)
    # Booked, but the node cannot pay it: its coins are spent outside the books.
    new = send_external(alice, node.rpc("getnewaddress"), balance // 3)
    backend = wallet.get_backend()
    backend.send_many({node.rpc("getnewaddress"): balance // 2}, "outside the books")

    result = Broadcaster(wallet).run()

    for out in (old, mid, new):
        out.refresh_from_db()
    assert old.state == Q.BROADCASTED
    assert (mid.state, mid.refusals, new.state, new.refusals) == (Q.QUEUED, 0, Q.QUEUED, 0)
    assert "balance cannot cover 2 outgoing" in result.message


def test_it_names_a_cancelled_outgoing_its_failed_broadcast_paid_after_all(
    wallet, alice, node, approver
):
    out = send_external(alice, node.rpc("getnewaddress"), 5_000_000)
    broadcast = Broadcaster(wallet).collect()
    Broadcast.objects.filter(pk=broadcast.pk).update(state="opened", opened_at=broadcast.created_at)
    fail_broadcast(broadcast, "node refused (simulated)")
    out.refresh_from_db()
    cancel(out, approver, "user asked")  # money back on 201

    note = record_late_reply(broadcast.pk, "ab" * 32)  # ...yet the send went through

    assert f"PAID AND GIVEN BACK: outgoing #{out.pk}" in note and "broadcast #None" not in note
    out.refresh_from_db()
    assert out.state == Q.CANCELLED  # nothing re-booked behind the operator's back
    assert Broadcast.objects.get(pk=broadcast.pk).needs_attention
