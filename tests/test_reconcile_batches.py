"""Reconciliation reads only what the node reports, in batches, and the books' figures from
the running totals: its cost follows the node's reply, not the books' history."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ledger import reconcile as reconcile_module
from ledger import services
from ledger.backends.base import ReceivedByAddress
from ledger.models import Account, Address, Currency, NetworkTransaction, Transaction, Wallet
from tests.rpc_double import RpcDouble

pytestmark = pytest.mark.django_db


def _txid(i):
    return f"{i:064x}"


@pytest.fixture
def node_reply():
    reply = {"received": [], "balance": 0}

    def answer(request):
        result = {
            "getbalance": reply["balance"],
            "listreceivedbyaddress": reply["received"],
        }.get(request["method"])
        return {"result": result, "error": None, "id": request.get("id")}

    double = RpcDouble(answer).start()
    yield reply, double
    double.stop()


def _books(double, n):
    btc = Currency.objects.create(code="BTC")
    wallet = Wallet.objects.create(name="w", currency=btc, backend_settings={"url": double.url})
    network = services.system_account(wallet, 900)
    for i in range(n):
        account = services.user_account(f"u{i}", btc)
        address = Address.objects.create(
            currency=btc, wallet=wallet, account=account, address=f"addr{i}", kind="receiving"
        )
        nt = NetworkTransaction.objects.create(
            currency=btc, wallet=wallet, txid=_txid(i), type="deposit"
        )
        services.post(network, account, 100, "deposit", network_transaction=nt, address=address)
    return wallet


def test_it_looks_up_only_the_reported_addresses_and_txids_in_batches(node_reply, monkeypatch):
    reply, double = node_reply
    wallet = _books(double, 10)
    monkeypatch.setattr(reconcile_module, "RECONCILE_BATCH", 2, raising=False)
    # The node reports 4 of the 10 addresses: one with a deposit the books lack, one paid
    # more than credited, and a change address the books never gave out.
    reply["received"] = [
        {"address": "addr1", "amount": 0.000001, "confirmations": 6, "txids": [_txid(1)]},
        {"address": "addr2", "amount": 0.0000015, "confirmations": 6, "txids": [_txid(2)]},
        {
            "address": "addr3",
            "amount": 0.000002,
            "confirmations": 6,
            "txids": [_txid(3), _txid(99)],
        },
        {"address": "change", "amount": 0.5, "confirmations": 6, "txids": [_txid(50)]},
    ]
    reply["balance"] = 0.00001
    with CaptureQueriesContext(connection) as queries:
        result = reconcile_module.reconcile(wallet)
    assert result.uncredited == 50 + 100
    assert result.missing_deposits == [
        {"address": "addr3", "txids": [_txid(99)], "received": 200, "credited": 100}
    ]
    assert result.books_balance == 1000
    # One query per batch of two rows, each with its own addresses and txids only (the
    # change address's txid is looked up nowhere); never every deposit or address.
    lookups = [q["sql"] for q in queries if "ledger_networktransaction" in q["sql"]]
    assert len(lookups) == 2
    assert all("ledger_address" in sql and "'deposit'" in sql for sql in lookups)
    assert "addr1" in lookups[0] and "addr2" in lookups[0] and "addr3" not in lookups[0]
    assert _txid(3) in lookups[1] and _txid(99) in lookups[1] and _txid(1) not in lookups[1]
    assert "change" in lookups[1] and _txid(50) in lookups[1]  # sent, then not joined
    assert _txid(5) not in " ".join(lookups) and "addr5" not in " ".join(lookups)


def test_it_takes_the_same_queries_whatever_the_books_history(node_reply):
    reply, double = node_reply
    wallet = _books(double, 3)
    reply["received"] = [
        {"address": "addr0", "amount": 0.000001, "confirmations": 6, "txids": [_txid(0)]}
    ]
    with CaptureQueriesContext(connection) as small:
        reconcile_module.reconcile(wallet)
    network = services.system_account(wallet, 900)
    alice = services.user_account("u0", wallet.currency)
    for _ in range(40):
        services.post(network, alice, 1, "internal")
    with CaptureQueriesContext(connection) as large:
        result = reconcile_module.reconcile(wallet)
    assert len(large) == len(small)
    assert result.books_balance == 340
    # No sum over the ledger rows of an account: totals come from ledger_accountbalance.
    assert not any(
        'SUM("ledger_transaction"."amount")' in q["sql"] and "source_id" in q["sql"] for q in large
    )


def _sqlite_books(using, n):
    """_books on another database alias, with the ledger rows written directly (services
    write to the default database)."""
    btc = Currency.objects.using(using).create(code="BTC")
    wallet = Wallet.objects.using(using).create(name="w", currency=btc)
    network = Account.objects.using(using).create(currency=btc, wallet=wallet, code=900)
    for i in range(n):
        account = Account.objects.using(using).create(currency=btc, user_id=f"u{i}", code=201)
        address = Address.objects.using(using).create(
            currency=btc, wallet=wallet, account=account, address=f"addr{i}", kind="receiving"
        )
        nt = NetworkTransaction.objects.using(using).create(
            currency=btc, wallet=wallet, txid=_txid(i), type="deposit"
        )
        Transaction.objects.using(using).create(
            currency=btc,
            source=network,
            destination=account,
            amount=100,
            kind="deposit",
            network_transaction=nt,
            address=address,
        )
    # A deposit of another wallet with a txid reported on ours: not this wallet's deposit.
    other = Wallet.objects.using(using).create(name="other", currency=btc)
    NetworkTransaction.objects.using(using).create(
        currency=btc, wallet=other, txid=_txid(77), type="deposit"
    )
    return wallet


@pytest.mark.django_db(databases=["default", "sqlite"])
@pytest.mark.parametrize("using", ["default", "sqlite"])
def test_it_looks_up_a_batch_in_one_query_on_both_engines(using):
    from django.db import connections

    wallet = _sqlite_books(using, 4)
    rows = [
        ReceivedByAddress("addr0", 100, 6, (_txid(0),)),
        ReceivedByAddress("addr1", 300, 6, (_txid(1), _txid(77), _txid(2))),
        ReceivedByAddress("addr9", 5, 6, (_txid(3),)),  # not an address of ours
        ReceivedByAddress("addr3", 0, 0, ()),
    ]
    with CaptureQueriesContext(connections[using]) as queries:
        credited, known = reconcile_module.lookup(wallet, rows)
    assert len(queries) == 1
    assert connections[using].vendor == {"default": "postgresql", "sqlite": "sqlite"}[using]
    assert credited == {"addr0": 100, "addr1": 100, "addr3": 100}
    assert all(type(v) is int for v in credited.values())
    # _txid(2) is a deposit of ours, but to addr2: still known on addr1 (a txid paying two
    # of our addresses); _txid(3) is on an address not ours, so it is not looked up.
    assert known == {("addr0", _txid(0)), ("addr1", _txid(1)), ("addr1", _txid(2))}
    assert reconcile_module.lookup(wallet, []) == ({}, set())


def test_it_reconciles_on_sqlite_as_the_default_database(node_reply, tmp_path):
    """The demo and a small install run on SQLite: the whole comparison, in a process whose
    default database is SQLite, against the node double of this process."""
    import json
    import subprocess
    import sys

    from tests.support import REPO

    reply, double = node_reply
    reply["received"] = [
        {"address": "addr0", "amount": 0.0000015, "confirmations": 6, "txids": [_txid(0)]},
        {"address": "addr1", "amount": 0.000001, "confirmations": 6, "txids": [_txid(1), _txid(9)]},
        {"address": "change", "amount": 0.5, "confirmations": 6, "txids": [_txid(8)]},
    ]
    reply["balance"] = 0.0000035
    script = f"""
import django, json
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from ledger import reconcile, services
from ledger.models import Address, Currency, NetworkTransaction, Wallet
assert connection.vendor == "sqlite"
btc = Currency.objects.create(code="BTC")
wallet = Wallet.objects.create(name="w", currency=btc, backend_settings={{"url": "{double.url}"}})
network = services.system_account(wallet, 900)
for i in range(3):
    account = services.user_account(f"u{{i}}", btc)
    address = Address.objects.create(
        currency=btc, wallet=wallet, account=account, address=f"addr{{i}}", kind="receiving"
    )
    nt = NetworkTransaction.objects.create(
        currency=btc, wallet=wallet, txid=f"{{i:064x}}", type="deposit"
    )
    services.post(network, account, 100, "deposit", network_transaction=nt, address=address)
reconcile.RECONCILE_BATCH = 2
print(json.dumps(reconcile.reconcile(wallet).as_dict()))
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["books_balance"] == 300
    assert result["uncredited"] == 50  # addr0: 150 received, 100 credited
    assert result["missing_deposits"] == [
        {"address": "addr1", "txids": [_txid(9)], "received": 100, "credited": 100}
    ]
    assert result["unaccounted"] == 350 - 300 - 50
