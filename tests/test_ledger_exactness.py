"""Money is exact on both engines: integer base units summed by the database."""

import pytest
from django.db.models import Sum

from ledger.models import Account, Currency, Transaction
from ledger.money import format_units, to_units

pytestmark = pytest.mark.django_db(databases=["default", "sqlite"])

ENGINES = ["default", "sqlite"]


def _accounts(using):
    btc = Currency.objects.using(using).create(code="BTC", decimals=8)
    src = Account.objects.using(using).create(currency=btc, user_id="u-src", code=201)
    dst = Account.objects.using(using).create(currency=btc, user_id="u-dst", code=201)
    return btc, src, dst


@pytest.mark.parametrize("using", ENGINES)
def test_it_sums_21_million_btc_to_the_satoshi(using):
    btc, src, dst = _accounts(using)
    Transaction.objects.using(using).create(
        currency=btc,
        source=src,
        destination=dst,
        amount=to_units("20999999.99999999", 8),
        kind="internal",
    )
    Transaction.objects.using(using).create(
        currency=btc, source=src, destination=dst, amount=to_units("0.00000001", 8), kind="internal"
    )
    total = Transaction.objects.using(using).filter(destination=dst).aggregate(s=Sum("amount"))["s"]
    assert format_units(total, 8) == "21000000.00000000"
    assert total == 2_100_000_000_000_000


@pytest.mark.parametrize("using", ENGINES)
def test_it_sums_many_one_satoshi_entries_exactly(using):
    btc, src, dst = _accounts(using)
    n = 20_000
    Transaction.objects.using(using).bulk_create(
        [
            Transaction(currency=btc, source=src, destination=dst, amount=1, kind="internal")
            for _ in range(n)
        ],
        batch_size=2000,
    )
    # A large amount next to the satoshis: a float sum would lose the last digits.
    Transaction.objects.using(using).create(
        currency=btc,
        source=src,
        destination=dst,
        amount=to_units("20999999.99", 8),
        kind="internal",
    )
    total = Transaction.objects.using(using).filter(destination=dst).aggregate(s=Sum("amount"))["s"]
    assert isinstance(total, int)
    assert format_units(total, 8) == "20999999.99020000"
