"""The invariant checker (tests/invariants.py) sees each kind of violation it exists for."""

import pytest
from django.utils import timezone

from broadcasts.models import Broadcast, OutgoingTransaction
from ledger import services as ledger
from ledger.models import Account, NetworkTransaction, Transaction
from ledger.money import to_units
from tests import invariants
from tests.support import make_currency, make_wallet

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.node]


@pytest.fixture
def paid(two_nodes):
    """A wallet on our node with one deposit from outside, credited; all invariants hold."""
    ours, outside = two_nodes
    currency = make_currency("BTC")
    wallet = make_wallet(currency, ours)
    address = ledger.new_receiving_address(wallet, "alice")
    outside.rpc("sendtoaddress", address.address, "1.5")
    invariants.quiesce(wallet, ours, outside)
    alice = ledger.user_account("alice", currency, Account.Code.BALANCE)
    assert ledger.balance(alice) == to_units("1.5", 8)
    assert invariants.check(wallet, ours) == []
    return wallet, ours, outside, alice


def test_it_sees_deposits_credited_wrongly_or_not_at_all_and_books_off_the_node(paid):
    wallet, ours, outside, alice = paid
    # Never credited: the chain has it, nobody polls.
    bob = ledger.new_receiving_address(wallet, "bob")
    outside.rpc("sendtoaddress", bob.address, "0.2")
    invariants.mine(ours, outside, 4)
    violations = invariants.check(wallet, ours)
    assert any("credited 0 time(s)" in v for v in violations), violations
    assert any("never credited" in v for v in violations), violations
    # Credited twice: a second credit of the first deposit under another address's name slips
    # past the UNIQUE constraint; the checker sees a credit the chain does not hold.
    credit = Transaction.objects.get(kind="deposit")
    other = ledger.new_receiving_address(wallet, "alice")
    ledger.post(
        credit.source,
        alice,
        credit.amount,
        "deposit",
        network_transaction=credit.network_transaction,
        address=other,
    )
    violations = invariants.check(wallet, ours)
    assert any(
        "credited 1 time(s)" in v and "chain holds no such payment" in v for v in violations
    ), violations
    # A claim without its credit.
    NetworkTransaction.objects.create(
        currency=wallet.currency,
        wallet=wallet,
        txid="ef" * 32,
        type="deposit",
        credited_at=credit.created_at,
    )
    assert any("credited_at set but no ledger credit" in v for v in invariants.check(wallet, ours))
    # Books that differ from the node.
    before = next(v for v in invariants.check(wallet, ours) if "books hold" in v)
    ledger.post(ledger.system_account(wallet, Account.Code.IMPORT), alice, 7, "import")
    after = next(v for v in invariants.check(wallet, ours) if "books hold" in v)
    assert before != after and "difference" in after


def test_it_sees_an_outgoing_stuck_paid_twice_or_unbooked(paid):
    from broadcasts.broadcaster import Broadcaster
    from broadcasts.withdrawals import send_external

    wallet, ours, outside, alice = paid
    destination = outside.rpc("getnewaddress")
    send_external(alice, destination, to_units("0.1", 8))
    Broadcaster(wallet).run()
    invariants.quiesce(wallet, ours, outside)
    assert invariants.check(wallet, ours) == []
    # The node pays the same address again behind the books' back: paid twice.
    ours.rpc("sendtoaddress", destination, "0.1")
    violations = invariants.check(wallet, ours)
    assert any(
        f"{destination}: the node paid 20000000 in 2 transaction(s), the books sent 10000000" in v
        for v in violations
    ), violations
    # An outgoing left in an opened broadcast is neither paid, queued nor returned.
    row = send_external(alice, outside.rpc("getnewaddress"), to_units("0.1", 8))
    b = Broadcast.objects.create(
        wallet=wallet,
        outputs={row.address: row.amount},
        output_count=1,
        transaction_count=1,
        total=row.amount,
        state=Broadcast.State.OPENED,
        opened_at=timezone.now(),
    )
    OutgoingTransaction.objects.filter(pk=row.pk).update(
        state=OutgoingTransaction.State.BROADCASTING, broadcast=b
    )
    violations = invariants.check(wallet, ours)
    assert any(f"outgoing #{row.pk} is stuck" in v for v in violations), violations
    assert any(f"broadcast #{b.pk} is still opened" in v for v in violations), violations


def test_it_sees_events_that_disagree_with_the_database(paid):
    from events.models import Event

    wallet, ours, outside, alice = paid
    deposit = Event.objects.filter(object_type="deposit")
    assert list(deposit.order_by("sequence").values_list("type", flat=True))[-1] == (
        "deposit.credited"
    )
    deposit.filter(sequence=1).delete()  # a hole in its numbering
    violations = invariants.check(wallet, ours)
    assert any("event sequence [2" in v for v in violations), violations
    deposit.filter(type="deposit.credited").delete()  # the credit never told
    violations = invariants.check(wallet, ours)
    assert any("0 deposit.credited events" in v for v in violations), violations
