"""send_external: validation and the 201 -> 204 lock with a queued outgoing transaction."""

import pytest

from broadcasts.errors import OutgoingError
from broadcasts.models import OutgoingTransaction
from broadcasts.withdrawals import send_external
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
    assert (out.wallet, out.address, out.amount, out.hold_account) == (
        wallet,
        address,
        30_000_000,
        hold,
    )
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
    with pytest.raises(OutgoingError, match="too little balance: 0.40000000 BTC available"):
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


# -- queue_withdrawal: the operator's flow, for the admin form and any command -----------------


def test_it_queues_for_an_existing_user_from_the_amount_as_typed(wallet, alice, operator, node):
    from django.contrib.admin.models import LogEntry

    from broadcasts.withdrawals import queue_withdrawal
    from tests.support import grant

    grant(operator, "broadcasts.queue_outgoingtransaction")
    address = node.rpc("getnewaddress")
    out = queue_withdrawal(" alice ", wallet.currency, address, "0.25", by=operator, label="ops")
    assert (out.account, out.amount, out.address, out.created_by, out.label) == (
        alice,
        25_000_000,
        address,
        operator,
        "ops",
    )
    assert LogEntry.objects.get(object_id=str(out.pk)).user == operator


def test_it_queues_only_for_existing_users_and_exact_amounts(wallet, alice, operator, node):
    from broadcasts.withdrawals import queue_withdrawal
    from tests.support import grant

    grant(operator, "broadcasts.queue_outgoingtransaction")
    address = node.rpc("getnewaddress")
    with pytest.raises(OutgoingError, match="no BTC account for this user") as typo:
        queue_withdrawal("alcie", wallet.currency, address, "0.25", by=operator)
    assert typo.value.field == "user_id"
    assert not Account.objects.filter(user_id="alcie").exists()  # a typo opens no books
    with pytest.raises(OutgoingError, match="more than 8 decimals") as precise:
        queue_withdrawal("alice", wallet.currency, address, "0.000000001", by=operator)
    assert precise.value.field == "amount"
    assert not OutgoingTransaction.objects.exists() and ledger.balance(alice) == 10**8


def test_it_refuses_to_queue_without_the_permission_and_lets_the_system_queue(
    wallet, alice, viewer, node
):
    from django.core.exceptions import PermissionDenied

    from broadcasts.withdrawals import queue_withdrawal
    from ledger.actors import SYSTEM

    with pytest.raises(PermissionDenied):
        queue_withdrawal("alice", wallet.currency, node.rpc("getnewaddress"), "0.25", by=viewer)
    assert not OutgoingTransaction.objects.exists()
    out = queue_withdrawal("alice", wallet.currency, node.rpc("getnewaddress"), "0.25", by=SYSTEM)
    assert out.amount == 25_000_000 and out.created_by is None


def test_it_asks_the_node_about_the_address_once_per_queueing(
    client, wallet, alice, operator, node, monkeypatch
):
    from django.urls import reverse

    from ledger.backends.bitcoind import BitcoindBackend
    from tests.support import grant

    calls = []
    real = BitcoindBackend.validate_address
    monkeypatch.setattr(
        BitcoindBackend, "validate_address", lambda self, a: calls.append(a) or real(self, a)
    )
    grant(operator, "broadcasts.view_outgoingtransaction", "broadcasts.queue_outgoingtransaction")
    client.force_login(operator)
    address = node.rpc("getnewaddress")
    form = {
        "user_id": "alice",
        "wallet": wallet.pk,
        "address": address,
        "amount": "0.25",
        "label": "",
    }
    assert (
        client.post(reverse("admin:broadcasts_outgoingtransaction_queue"), form).status_code == 302
    )
    assert calls == [address]
