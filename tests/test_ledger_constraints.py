"""The database itself refuses what breaks the books, on both engines."""

import pytest
from django.db import IntegrityError, transaction

from ledger import services
from ledger.models import Account, Currency, NetworkTransaction, Transaction, Wallet

pytestmark = pytest.mark.django_db(databases=["default", "sqlite"])
ENGINES = ["default", "sqlite"]
TXID = "ab" * 32


def _setup(using):
    btc = Currency.objects.using(using).create(code="BTC")
    ltc = Currency.objects.using(using).create(code="LTC")
    a = Account.objects.using(using).create(currency=btc, user_id="alice", code=201)
    b = Account.objects.using(using).create(currency=btc, user_id="bob", code=201)
    c = Account.objects.using(using).create(currency=ltc, user_id="carol", code=201)
    return btc, ltc, a, b, c


def _refused(using, **fields):
    with pytest.raises(IntegrityError):
        with transaction.atomic(using=using):
            Transaction.objects.using(using).create(kind="internal", **fields)


@pytest.mark.parametrize("using", ENGINES)
def test_it_rejects_zero_and_negative_amounts(using):
    btc, _, a, b, _ = _setup(using)
    _refused(using, currency=btc, source=a, destination=b, amount=0)
    _refused(using, currency=btc, source=a, destination=b, amount=-1)
    assert Transaction.objects.using(using).count() == 0


@pytest.mark.parametrize("using", ENGINES)
def test_it_rejects_a_cross_currency_transaction(using):
    btc, ltc, a, _, c = _setup(using)
    _refused(using, currency=btc, source=a, destination=c, amount=5)
    _refused(using, currency=ltc, source=a, destination=c, amount=5)
    assert Transaction.objects.using(using).count() == 0


@pytest.mark.parametrize("using", ENGINES)
def test_it_rejects_a_duplicate_txid_per_currency_and_type(using):
    btc, ltc, *_ = _setup(using)
    wallet = Wallet.objects.using(using).create(name="w", currency=btc)
    wallet_ltc = Wallet.objects.using(using).create(name="wl", currency=ltc)
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=wallet, txid=TXID, type="deposit"
    )
    with pytest.raises(IntegrityError):
        with transaction.atomic(using=using):
            NetworkTransaction.objects.using(using).create(
                currency=btc, wallet=wallet, txid=TXID, type="deposit"
            )
    # Our own broadcast paying our own address is both a broadcast and a deposit.
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=wallet, txid=TXID, type="broadcast"
    )
    NetworkTransaction.objects.using(using).create(
        currency=ltc, wallet=wallet_ltc, txid=TXID, type="deposit"
    )
    assert NetworkTransaction.objects.using(using).count() == 3


@pytest.mark.parametrize("using", ENGINES)
def test_it_rejects_a_malformed_txid(using):
    btc, *_ = _setup(using)
    wallet = Wallet.objects.using(using).create(name="w", currency=btc)
    with pytest.raises(IntegrityError):
        with transaction.atomic(using=using):
            NetworkTransaction.objects.using(using).create(
                currency=btc, wallet=wallet, txid="XYZ", type="deposit"
            )


@pytest.mark.parametrize("using", ENGINES)
def test_it_keeps_one_account_per_user_currency_and_code(using):
    btc, _, a, _, _ = _setup(using)
    with pytest.raises(IntegrityError):
        with transaction.atomic(using=using):
            Account.objects.using(using).create(currency=btc, user_id="alice", code=201)


@pytest.mark.parametrize("using", ENGINES)
def test_it_refuses_to_edit_a_ledger_row(using):
    btc, _, a, b, _ = _setup(using)
    row = Transaction.objects.using(using).create(
        currency=btc, source=a, destination=b, amount=10, kind="internal"
    )
    with pytest.raises(IntegrityError):
        with transaction.atomic(using=using):
            Transaction.objects.using(using).filter(pk=row.pk).update(amount=11)
    row.refresh_from_db(using=using)
    assert row.amount == 10
    # Since ledger 0006 no column changes, not even a label (tests/test_ledger_append_only.py).
    with pytest.raises(IntegrityError):
        with transaction.atomic(using=using):
            Transaction.objects.using(using).filter(pk=row.pk).update(label="note")


def test_it_posts_through_the_service_with_clear_errors():
    btc, ltc, a, b, c = _setup("default")
    with pytest.raises(services.LedgerError, match="greater than zero"):
        services.post(a, b, 0, "internal")
    with pytest.raises(services.LedgerError, match="same currency"):
        services.post(a, c, 5, "internal")
    with pytest.raises(services.LedgerError, match="integer base units"):
        services.post(a, b, 1.5, "internal")
    services.post(a, b, 7, "internal")
    assert services.balances([a.pk, b.pk]) == {a.pk: -7, b.pk: 7}


def test_it_creates_a_users_seven_accounts_once():
    btc, *_ = _setup("default")
    first = services.user_accounts("dave", btc)
    again = services.user_accounts("dave", btc)
    assert sorted(first) == [201, 202, 203, 204, 205, 206, 230]
    assert {k: v.pk for k, v in first.items()} == {k: v.pk for k, v in again.items()}


@pytest.mark.parametrize("using", ENGINES)
def test_it_keeps_one_deposit_per_wallet_and_one_broadcast_per_currency_for_a_txid(using):
    btc, *_ = _setup(using)
    a = Wallet.objects.using(using).create(name="a", currency=btc)
    b = Wallet.objects.using(using).create(name="b", currency=btc)
    # One transaction paying two of our wallets (a batched payout) is a deposit of each.
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=a, txid=TXID, type="deposit"
    )
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=b, txid=TXID, type="deposit"
    )
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=a, txid=TXID, type="broadcast"
    )
    for wallet, kind in ((a, "deposit"), (b, "broadcast")):
        with pytest.raises(IntegrityError), transaction.atomic(using=using):
            NetworkTransaction.objects.using(using).create(
                currency=btc, wallet=wallet, txid=TXID, type=kind
            )
    assert NetworkTransaction.objects.using(using).count() == 3


@pytest.mark.parametrize("using", ENGINES)
def test_it_rejects_a_deposit_closed_without_its_credit(using):
    from django.utils import timezone

    btc, *_ = _setup(using)
    wallet = Wallet.objects.using(using).create(name="w", currency=btc)
    row = NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=wallet, txid=TXID, type="deposit"
    )
    with pytest.raises(IntegrityError), transaction.atomic(using=using):
        NetworkTransaction.objects.using(using).filter(pk=row.pk).update(state="closed")
    # Closed with its credit, closed by hand, or a broadcast closed: all allowed.
    NetworkTransaction.objects.using(using).filter(pk=row.pk).update(
        state="closed", credited_at=timezone.now()
    )
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=wallet, txid="cd" * 32, type="deposit", state="closed_by_hand"
    )
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=wallet, txid=TXID, type="broadcast", state="closed"
    )
    assert NetworkTransaction.objects.using(using).filter(state__startswith="closed").count() == 3
