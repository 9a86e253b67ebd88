"""The ledger is append-only in the database: an attacker with the ORM or raw SQL cannot delete
a ledger row, edit any of its columns, or re-point an account that has entries. Both engines."""

import importlib
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, connections, transaction

from ledger.models import Account, Address, Currency, NetworkTransaction, Transaction, Wallet

pytestmark = pytest.mark.django_db(databases=["default", "sqlite"])
ENGINES = ["default", "sqlite"]


def _books(using):
    btc = Currency.objects.using(using).create(code="BTC")
    ltc = Currency.objects.using(using).create(code="LTC")
    wallet = Wallet.objects.using(using).create(name="w", currency=btc)
    other_wallet = Wallet.objects.using(using).create(name="w2", currency=btc)
    alice = Account.objects.using(using).create(currency=btc, user_id="alice", code=201)
    network = Account.objects.using(using).create(currency=btc, wallet=wallet, code=900)
    nt = NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=wallet, txid="ab" * 32, type="deposit"
    )
    nt2 = NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=wallet, txid="cd" * 32, type="deposit"
    )
    address = Address.objects.using(using).create(
        currency=btc, wallet=wallet, account=alice, address="a1", kind="receiving"
    )
    address2 = Address.objects.using(using).create(
        currency=btc, wallet=wallet, account=alice, address="a2", kind="receiving"
    )
    row = Transaction.objects.using(using).create(
        currency=btc,
        source=network,
        destination=alice,
        amount=10,
        kind="deposit",
        network_transaction=nt,
        address=address,
        label="deposit abab",
    )
    return dict(
        btc=btc,
        ltc=ltc,
        wallet=wallet,
        other_wallet=other_wallet,
        alice=alice,
        network=network,
        nt=nt,
        nt2=nt2,
        address=address,
        address2=address2,
        row=row,
    )


def _refused(using, action):
    with pytest.raises(IntegrityError, match="append-only|keeps its currency"):
        with transaction.atomic(using=using):
            action()


def _snapshot(using):
    return list(Transaction.objects.using(using).order_by("pk").values())


@pytest.mark.parametrize("using", ENGINES)
def test_it_refuses_to_delete_a_ledger_row(using):
    b = _books(using)
    before = _snapshot(using)
    _refused(using, lambda: Transaction.objects.using(using).filter(pk=b["row"].pk).delete())
    _refused(using, lambda: connections[using].cursor().execute("DELETE FROM ledger_transaction"))
    assert _snapshot(using) == before


@pytest.mark.parametrize("using", ENGINES)
@pytest.mark.parametrize(
    "column", ["kind", "network_transaction", "address", "label", "created_at", "created_by"]
)
def test_it_refuses_to_change_any_column_of_a_ledger_row(using, column, django_user_model):
    b = _books(using)
    user = django_user_model.objects.db_manager(using).create_user("mallory")
    new = {
        "kind": "import",
        "network_transaction": b["nt2"],
        "address": b["address2"],
        "label": "rewritten",
        "created_at": b["row"].created_at - timedelta(days=1),
        "created_by": user,
    }[column]
    before = _snapshot(using)
    _refused(
        using,
        lambda: Transaction.objects.using(using).filter(pk=b["row"].pk).update(**{column: new}),
    )
    assert _snapshot(using) == before


@pytest.mark.parametrize("using", ENGINES)
def test_it_refuses_raw_sql_edits_of_a_ledger_row(using):
    b = _books(using)
    before = _snapshot(using)
    for sql, params in [
        ("UPDATE ledger_transaction SET kind = %s", ["internal"]),
        ("UPDATE ledger_transaction SET network_transaction_id = NULL", []),
        ("UPDATE ledger_transaction SET address_id = NULL", []),
        ("UPDATE ledger_transaction SET id = id + 1000", []),
    ]:
        _refused(
            using, lambda sql=sql, params=params: connections[using].cursor().execute(sql, params)
        )
    assert _snapshot(using) == before
    # A write that changes nothing is harmless and allowed (Django's save() of an unchanged row).
    b["row"].save(using=using)
    assert _snapshot(using) == before


@pytest.mark.parametrize("using", ENGINES)
@pytest.mark.parametrize("change", ["currency", "code", "user_id", "wallet"])
def test_it_refuses_to_repoint_an_account_that_has_entries(using, change):
    b = _books(using)
    if change == "wallet":
        account, fields = b["network"], {"wallet": b["other_wallet"]}
    else:
        account = b["alice"]
        fields = {
            "currency": {"currency": b["ltc"]},
            "code": {"code": 202},
            "user_id": {"user_id": "mallory"},
        }[change]
    before = list(Account.objects.using(using).filter(pk=account.pk).values())
    _refused(using, lambda: Account.objects.using(using).filter(pk=account.pk).update(**fields))
    assert list(Account.objects.using(using).filter(pk=account.pk).values()) == before


@pytest.mark.parametrize("using", ENGINES)
def test_it_refuses_raw_sql_repointing_of_accounts_with_entries(using):
    b = _books(using)
    _refused(
        using,
        lambda: (
            connections[using]
            .cursor()
            .execute(
                "UPDATE ledger_account SET user_id = %s WHERE id = %s", ["mallory", b["alice"].pk]
            )
        ),
    )
    assert Account.objects.using(using).get(pk=b["alice"].pk).user_id == "alice"


@pytest.mark.parametrize("using", ENGINES)
def test_it_lets_an_account_without_entries_change(using):
    b = _books(using)
    bob = Account.objects.using(using).create(currency=b["btc"], user_id="bob", code=201)
    Account.objects.using(using).filter(pk=bob.pk).update(user_id="robert", code=202)
    assert Account.objects.using(using).filter(user_id="robert", code=202).count() == 1
    # Columns that do not say whose money it is stay editable even with entries.
    Account.objects.using(using).filter(pk=b["alice"].pk).update(created_at=b["alice"].created_at)


@pytest.mark.parametrize("using", ENGINES)
def test_it_leaves_existing_rows_intact_when_the_triggers_are_installed(using):
    migration = importlib.import_module("ledger.migrations.0007_append_only")
    b = _books(using)
    connection = connections[using]
    # The migration's own functions on this test's connection (SQLite's schema editor refuses
    # to open inside the test's transaction); they only run SQL.
    editor = SimpleNamespace(
        connection=connection, execute=lambda sql: connection.cursor().execute(sql)
    )
    migration.backward(None, editor)
    # Without the triggers (the database before this migration) the row could be edited...
    Transaction.objects.using(using).filter(pk=b["row"].pk).update(label="before the migration")
    before = _snapshot(using)
    migration.forward(None, editor)
    # ...installing them keeps every existing row as it was, and guards it from now on.
    assert _snapshot(using) == before
    _refused(using, lambda: Transaction.objects.using(using).filter(pk=b["row"].pk).delete())
    assert _snapshot(using) == before
