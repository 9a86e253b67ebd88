"""send_external: validation and the 201 -> 204 lock with a queued outgoing transaction."""
import pytest

from broadcasts.models import OutgoingTransaction
from broadcasts.services import OutgoingError, send_external
from ledger import services as ledger
from ledger.models import Account, Transaction
from tests.support import credit_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(wallet):
    return credit_user(wallet, "alice", 10**8)


def test_it_moves_the_amount_to_204_and_queues_it(wallet, alice, node):
    address = node.rpc("getnewaddress")
    out = send_external(alice, address, 30_000_000)
    hold = ledger.user_account("alice", wallet.currency, Account.Code.WITHDRAW_LOCKED)
    assert out.state == OutgoingTransaction.State.QUEUED and out.broadcast is None
    assert (out.wallet, out.address, out.amount, out.hold_account) == (wallet, address, 30_000_000, hold)
    assert ledger.balances([alice.pk, hold.pk]) == {alice.pk: 70_000_000, hold.pk: 30_000_000}
    assert out.lock_entry.kind == Transaction.Kind.PENDING_OUTGOING


def test_it_refuses_an_invalid_address(wallet, alice):
    with pytest.raises(OutgoingError, match="not a valid BTC address"):
        send_external(alice, "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", 1000)  # mainnet: wrong network
    with pytest.raises(OutgoingError, match="not a valid"):
        send_external(alice, "not-an-address", 1000)
    assert not OutgoingTransaction.objects.exists()
    assert ledger.balance(alice) == 10**8


@pytest.mark.parametrize("amount", [0, -5])
def test_it_refuses_a_zero_or_negative_amount(wallet, alice, node, amount):
    with pytest.raises(OutgoingError, match="greater than zero"):
        send_external(alice, node.rpc("getnewaddress"), amount)
    assert not OutgoingTransaction.objects.exists()


def test_it_refuses_non_integer_amounts(wallet, alice, node):
    from decimal import Decimal

    for bad in (0.5, Decimal("0.5"), True):
        with pytest.raises(OutgoingError, match="integer base units"):
            send_external(alice, node.rpc("getnewaddress"), bad)


def test_it_refuses_more_than_the_balance(wallet, alice, node):
    send_external(alice, node.rpc("getnewaddress"), 60_000_000)
    with pytest.raises(OutgoingError, match="too little balance: 0.40000000 available"):
        send_external(alice, node.rpc("getnewaddress"), 40_000_001)
    assert OutgoingTransaction.objects.count() == 1
    assert ledger.balance(alice) == 40_000_000


def test_it_refuses_a_disabled_currency_or_wallet(wallet, alice, node):
    address = node.rpc("getnewaddress")
    wallet.currency.enabled = False
    wallet.currency.save()
    alice.currency.refresh_from_db()
    with pytest.raises(OutgoingError, match="BTC is disabled"):
        send_external(alice, address, 1000)
    wallet.currency.enabled = True
    wallet.currency.save()
    alice.currency.refresh_from_db()
    wallet.enabled = False
    wallet.save()
    with pytest.raises(OutgoingError, match="no enabled BTC wallet"):
        send_external(alice, address, 1000)
    assert not OutgoingTransaction.objects.exists()


def test_it_pays_only_from_a_201_account(wallet, alice, node):
    hold = ledger.user_account("alice", wallet.currency, Account.Code.WITHDRAW_LOCKED)
    with pytest.raises(OutgoingError, match="201"):
        send_external(hold, node.rpc("getnewaddress"), 1000)
