"""Benchmarks' bulk SQL reads its columns from the model (devtools/bulk.py): a column added by
a later migration gets the model's default instead of breaking the INSERT."""

import pytest
from django.db import connection

from devtools.bulk import insert_select
from ledger.models import Currency, Wallet

pytestmark = pytest.mark.django_db


def test_it_fills_every_column_the_caller_does_not_name_from_the_model():
    btc = Currency.objects.create(code="BLK")
    sql = insert_select(
        Wallet,
        {"name": "'bulk-' || n", "currency_id": str(btc.pk)},
        "FROM generate_series(1, 3) n",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
    wallets = Wallet.objects.filter(name__startswith="bulk-").order_by("name")
    assert [w.name for w in wallets] == ["bulk-1", "bulk-2", "bulk-3"]
    first = wallets[0]
    assert first.last_poll_error == "" and first.last_reconciliation == {}
    assert first.backend == Wallet.Backend.BITCOIND and first.enabled is True
    assert first.last_block_height is None and first.created_at is not None


def test_it_refuses_a_column_the_model_does_not_have():
    with pytest.raises(ValueError, match="no column nope"):
        insert_select(Currency, {"code": "'X'", "nope": "1"}, "")


def test_it_asks_for_a_required_column_without_a_default():
    with pytest.raises(ValueError, match="Wallet.currency has no default"):
        insert_select(Wallet, {"name": "'w'"}, "")
