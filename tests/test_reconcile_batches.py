"""Reconciliation reads only what the node reports, in batches, and the books' figures from
the running totals: its cost follows the node's reply, not the books' history."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ledger import reconcile as reconcile_module
from ledger import services
from ledger.models import Address, Currency, NetworkTransaction, Wallet
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
    txid_lookups = [q["sql"] for q in queries if "ledger_networktransaction" in q["sql"]]
    # Two batches of two addresses, each with its own txids only; never every deposit.
    assert len(txid_lookups) == 2
    assert all('"txid" IN' in sql for sql in txid_lookups)
    assert _txid(5) not in " ".join(txid_lookups)
    address_lookups = [q["sql"] for q in queries if 'FROM "ledger_address"' in q["sql"]]
    assert len(address_lookups) == 2 and all('"address" IN' in s for s in address_lookups)


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
