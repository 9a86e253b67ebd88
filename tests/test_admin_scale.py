"""Operator list pages that cost the same at any size: searches resolved from indexes to
ids, a user filter on the ledger, a capped count, no per-row queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broadcasts.models import OutgoingTransaction
from ledger import services
from ledger.admin_lists import CappedPaginator
from ledger.models import Address, Currency, NetworkTransaction, Transaction, Wallet

pytestmark = pytest.mark.django_db


def _txid(i):
    return f"{i:064x}"


def _books(n):
    """n users, each paid by one deposit to an address of theirs."""
    btc = Currency.objects.first() or Currency.objects.create(code="BTC")
    wallet = Wallet.objects.first() or Wallet.objects.create(name="w", currency=btc)
    network = services.system_account(wallet, 900)
    start = NetworkTransaction.objects.count()
    for i in range(start, start + n):
        account = services.user_account(f"user{i}", btc)
        address = Address.objects.create(
            currency=btc, wallet=wallet, account=account, address=f"addr{i}", kind="receiving"
        )
        nt = NetworkTransaction.objects.create(
            currency=btc, wallet=wallet, txid=_txid(i), type="deposit"
        )
        services.post(
            network, account, 1000 + i, "deposit", network_transaction=nt, address=address
        )
    return btc, wallet


def _get(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response, queries


def _rows(response):
    return list(response.context["cl"].result_list)


def test_it_finds_a_ledger_row_by_txid_in_the_same_number_of_queries_at_any_size(client, superuser):
    client.force_login(superuser)
    _books(3)
    url = "/admin/ledger/transaction/?q=" + _txid(1)
    small, small_queries = _get(client, url)
    assert [r.network_transaction.txid for r in _rows(small)] == [_txid(1)]
    _books(30)
    large, large_queries = _get(client, url)
    assert [r.network_transaction.txid for r in _rows(large)] == [_txid(1)]
    assert len(large_queries) == len(small_queries)
    # Resolved to ids first: no LIKE over joined tables, no DISTINCT over their product.
    sql = " ".join(q["sql"] for q in large_queries)
    assert "LIKE" not in sql and "DISTINCT" not in sql


def test_it_finds_ledger_rows_by_user_id_and_receiving_address(client, superuser):
    client.force_login(superuser)
    _books(5)
    rows = _rows(client.get("/admin/ledger/transaction/?q=user3"))
    assert [r.destination.user_id for r in rows] == ["user3"]
    rows = _rows(client.get("/admin/ledger/transaction/?q=addr4"))
    assert [r.destination.user_id for r in rows] == ["user4"]
    # Exact, not "contains": user1 does not find user10.
    _books(8)
    rows = _rows(client.get("/admin/ledger/transaction/?q=user1"))
    assert [r.destination.user_id for r in rows] == ["user1"]


def test_it_filters_the_ledger_by_user_and_by_account(client, superuser):
    client.force_login(superuser)
    btc, wallet = _books(4)
    alice = services.user_account("user2", btc)
    hold = services.user_account("user2", btc, 204)
    services.post(alice, hold, 5, "pending_outgoing")
    page = client.get("/admin/ledger/transaction/?user=user2&kind__exact=deposit")
    assert [(r.kind, r.amount) for r in _rows(page)] == [("deposit", 1002)]
    assert b'name="user" value="user2"' in page.content
    page = client.get(f"/admin/ledger/transaction/?account={hold.pk}")
    assert [(r.kind, r.amount) for r in _rows(page)] == [("pending_outgoing", 5)]
    assert _rows(client.get("/admin/ledger/transaction/?user=nobody")) == []


def test_it_has_no_date_hierarchy_over_the_ledger(client, superuser):
    client.force_login(superuser)
    _books(3)
    _, queries = _get(client, "/admin/ledger/transaction/")
    assert not any("DISTINCT" in q["sql"] for q in queries)


def test_it_finds_network_transactions_by_txid_and_by_address(client, superuser):
    client.force_login(superuser)
    _books(6)
    rows = _rows(client.get("/admin/ledger/networktransaction/?q=" + _txid(2).upper()))
    assert [r.txid for r in rows] == [_txid(2)]
    rows = _rows(client.get("/admin/ledger/networktransaction/?q=addr5"))
    assert [r.txid for r in rows] == [_txid(5)]
    assert _rows(client.get("/admin/ledger/networktransaction/?q=addr")) == []


def test_it_finds_accounts_and_addresses_by_exact_user_id(client, superuser):
    client.force_login(superuser)
    _books(12)
    rows = _rows(client.get("/admin/ledger/account/?q=user1"))
    assert {r.user_id for r in rows} == {"user1"} and len(rows) == 7
    rows = _rows(client.get("/admin/ledger/address/?q=user11"))
    assert [r.address for r in rows] == ["addr11"]
    rows = _rows(client.get("/admin/ledger/address/?q=addr7"))
    assert [r.address for r in rows] == ["addr7"]


def test_it_counts_at_most_the_cap_past_which_it_estimates(client, superuser, monkeypatch):
    client.force_login(superuser)
    monkeypatch.setattr(CappedPaginator, "CAP", 5)
    _books(12)
    page = client.get("/admin/ledger/networktransaction/?type__exact=deposit")
    assert page.context["cl"].result_count == 6  # "more than 5"
    page = client.get("/admin/ledger/networktransaction/?q=" + _txid(3))
    assert page.context["cl"].result_count == 1
    # Unfiltered: PostgreSQL's estimate of the table once it has one.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ledger_networktransaction")
    page = client.get("/admin/ledger/networktransaction/")
    assert page.context["cl"].result_count == 12


@pytest.mark.django_db(databases=["default", "sqlite"])
def test_it_counts_with_the_cap_on_sqlite(monkeypatch):
    monkeypatch.setattr(CappedPaginator, "CAP", 3)
    btc = Currency.objects.using("sqlite").create(code="BTC")
    Currency.objects.using("sqlite").bulk_create([Currency(code=f"C{i}") for i in range(5)])
    assert CappedPaginator(Currency.objects.using("sqlite").all(), 2).count == 4
    assert CappedPaginator(Currency.objects.using("sqlite").filter(pk=btc.pk), 2).count == 1


def _outgoing(btc, wallet, n):
    for i in range(n):
        user = f"out{OutgoingTransaction.objects.count()}"
        account = services.user_account(user, btc)
        hold = services.user_account(user, btc, 204)
        services.post(services.system_account(wallet, 900), account, 10, "deposit")
        entry = services.post(account, hold, 10, "pending_outgoing")
        OutgoingTransaction.objects.create(
            wallet=wallet,
            currency=btc,
            account=account,
            hold_account=hold,
            address=f"dest{i}",
            amount=10,
            lock_entry=entry,
        )


def test_it_lists_outgoing_transactions_in_the_same_number_of_queries_at_any_size(
    client, superuser
):
    client.force_login(superuser)
    btc, wallet = _books(1)
    _outgoing(btc, wallet, 2)
    _, small = _get(client, "/admin/broadcasts/outgoingtransaction/")
    _outgoing(btc, wallet, 12)
    page, large = _get(client, "/admin/broadcasts/outgoingtransaction/")
    assert len(_rows(page)) == 14
    assert len(large) == len(small)
    rows = _rows(client.get("/admin/broadcasts/outgoingtransaction/?q=out3"))
    assert [r.account.user_id for r in rows] == ["out3"]


def test_it_lists_every_operator_page_in_the_same_number_of_queries_at_any_size(client, superuser):
    client.force_login(superuser)
    pages = [
        "/admin/ledger/transaction/",
        "/admin/ledger/transaction/?currency__id__exact=1",
        "/admin/ledger/networktransaction/",
        "/admin/ledger/account/",
        "/admin/ledger/address/",
        "/admin/broadcasts/broadcast/",
    ]
    _books(2)
    small = {url: len(_get(client, url)[1]) for url in pages}
    _books(15)
    large = {url: len(_get(client, url)[1]) for url in pages}
    assert large == small
    assert Transaction.objects.count() == 17
