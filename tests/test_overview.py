"""The admin home's figures."""

import re

import pytest
from django.utils import timezone

from ledger import services
from ledger.models import NetworkTransaction
from ops import overview

pytestmark = pytest.mark.django_db


def test_it_counts_open_and_stuck_transactions_per_currency(db_wallet, btc):
    wallet = db_wallet
    now = timezone.now()
    NetworkTransaction.objects.create(currency=btc, wallet=wallet, txid="a" * 64, type="deposit")
    NetworkTransaction.objects.create(
        currency=btc,
        wallet=wallet,
        txid="b" * 64,
        type="deposit",
        opened_at=now - timezone.timedelta(hours=2),
    )
    NetworkTransaction.objects.create(
        currency=btc, wallet=wallet, txid="c" * 64, type="deposit", state="closed", credited_at=now
    )  # a deposit closes only with its credit
    row = overview.currency_rows()[0]
    assert (row["open"], row["stuck"]) == (2, 1)


def test_it_shows_node_and_books_difference_per_wallet(btc, fresh_node):
    from tests.support import make_wallet

    server = fresh_node()
    server.generate(101)  # 50 BTC spendable, none of it in the books yet
    wallet = make_wallet(btc, server)
    target = services.user_account("alice", btc)
    services.post(services.system_account(wallet, 910), target, 30 * 10**8, "import")
    row = overview.wallet_rows()[0]
    assert row["reachable"] is True
    assert row["books_units"] == 30 * 10**8 and row["awaiting_units"] == 0
    assert row["difference_units"] == 20 * 10**8


def test_it_marks_a_schedule_red_after_three_missed_intervals(db):
    from django_q.models import Schedule

    # Registered jobs: a schedule may run nothing else (ops/scheduler.py).
    Schedule.objects.create(
        name="late",
        func="ledger.tasks.poll_all_currencies",
        schedule_type="I",
        minutes=1,
        next_run=timezone.now() - timezone.timedelta(minutes=5),
    )
    Schedule.objects.create(
        name="fine",
        func="ledger.tasks.scheduled_rescan",
        schedule_type="I",
        minutes=1,
        next_run=timezone.now() + timezone.timedelta(seconds=20),
    )
    rows = {r["schedule"].name: r for r in overview.schedule_rows()}
    assert rows["late"]["red"] is True
    assert rows["fine"]["red"] is False


def test_it_draws_deposits_per_hour(db_wallet, btc):
    wallet = db_wallet
    alice = services.user_account("alice", btc)
    services.post(services.system_account(wallet, 900), alice, 5, "deposit")
    series = overview.deposits_per_hour()
    assert len(series) == 24 and series[-1][1] == 1
    svg = overview.bar_chart_svg(series)
    assert svg.startswith("<svg") and "peak 1 / hour" in svg


def test_it_renders_the_admin_home_with_panels(client, superuser, wallet):
    client.force_login(superuser)
    response = client.get("/admin/")
    assert response.status_code == 200
    body = response.content.decode()
    for title in ("Currencies", "Wallets and nodes", "Deposits per hour", "Scheduler"):
        assert title in body
    assert wallet.name in body


def test_it_shows_a_misconfigured_wallet_as_unreachable_instead_of_failing(client, superuser, btc):
    from ledger.models import Wallet

    Wallet.objects.create(currency=btc, name="no-url", backend="bitcoind", backend_settings={})
    row = overview.wallet_rows()[0]
    assert row["reachable"] is False and "no 'url'" in row["error"]
    client.force_login(superuser)
    page = client.get("/admin/")
    assert page.status_code == 200 and b"unreachable" in page.content


def test_it_links_a_books_above_node_difference_in_red_to_the_reconcile_page(
    client, superuser, btc, fresh_node
):
    from tests.support import make_wallet

    wallet = make_wallet(btc, fresh_node())  # an empty node
    services.post(
        services.system_account(wallet, 910), services.user_account("alice", btc), 5, "import"
    )
    client.force_login(superuser)
    page = client.get("/admin/").content.decode()
    reconcile = f"/admin/ledger/wallet/{wallet.pk}/reconcile/"
    assert f'href="{reconcile}" style="color:#ba2121' in page and "-0.00000005" in page


def test_it_shows_awaiting_credit_apart_and_the_difference_as_reconcile_computes_it_once_recorded(
    client, superuser, two_nodes
):
    from ledger.reconcile import reconcile
    from ledger.rescan import rescan_wallet
    from tests.support import make_currency, make_wallet, pay_from_outside

    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    address = services.new_receiving_address(wallet, "alice")
    pay_from_outside(ours, outside, address.address, "0.75")  # received, not credited yet
    overview._NODE_CACHE.clear()
    # The quick figures know only the deposits the books recorded: one the node has and the
    # books never saw is in the difference until a rescan (or the poller) records it.
    row = overview.wallet_rows()[0]
    assert (row["difference_units"], row["awaiting_units"]) == (75_000_000, 0)
    assert reconcile(wallet).missing_deposits  # the full reconciliation names it
    rescan_wallet(wallet)
    row = overview.wallet_rows()[0]  # the node's balance is cached; the books are read again
    assert (row["difference_units"], row["awaiting_units"]) == (0, 75_000_000)
    assert row["difference_units"] == reconcile(wallet).unaccounted
    client.force_login(superuser)
    page = client.get("/admin/").content.decode()
    assert "0.75000000 BTC" in page
    assert re.search(r'color:#2e7d32;font-weight:600"[^>]*>0\.00000000 BTC<', page)


def _node_double(balance):
    """A node answering getbalance and getblockcount, recording every method asked."""
    from tests.rpc_double import RpcDouble

    def answer(request):
        calls = request if isinstance(request, list) else [request]
        replies = [
            {
                "result": {"getbalance": balance, "getblockcount": 321}.get(c.get("method")),
                "error": None,
                "id": c.get("id"),
            }
            for c in calls
        ]
        return replies if isinstance(request, list) else replies[0]

    return RpcDouble(answer).start()


def _methods(double):
    return [c.get("method") for r in double.requests for c in (r if isinstance(r, list) else [r])]


def test_it_shows_the_quick_figures_without_reading_every_received_address(client, superuser, btc):
    from ledger.models import Wallet
    from ledger.reconcile import quick

    double = _node_double(1.5)  # 150,000,000 units on the node, pending included
    try:
        wallet = Wallet.objects.create(
            currency=btc, name="quick", backend="bitcoind", backend_settings={"url": double.url}
        )
        services.post(
            services.system_account(wallet, 910),
            services.user_account("alice", btc),
            10**8,
            "import",
        )
        deposit = dict(currency=btc, wallet=wallet, type="deposit")
        # Awaiting credit: open on the node, not credited yet.
        NetworkTransaction.objects.create(txid="a" * 64, amount=30_000_000, **deposit)
        # Not awaiting: conflicted (out of the node's balance, though still polled), credited
        # (still open until the polling threshold) or closed.
        NetworkTransaction.objects.create(
            txid="b" * 64, amount=5_000_000, state="conflicted", **deposit
        )
        now = timezone.now()
        NetworkTransaction.objects.create(
            txid="c" * 64, amount=7_000_000, credited_at=now, **deposit
        )
        NetworkTransaction.objects.create(
            txid="d" * 64, amount=9_000_000, state="closed", credited_at=now, **deposit
        )
        overview._NODE_CACHE.clear()
        row = overview.wallet_rows()[0]
        assert (row["balance_units"], row["books_units"]) == (150_000_000, 10**8)
        assert (row["awaiting_units"], row["unknown_amount"]) == (30_000_000, 0)
        assert row["difference_units"] == 150_000_000 - 10**8 - 30_000_000
        # A row recorded before its amount was kept cannot be summed: counted and said.
        NetworkTransaction.objects.create(txid="e" * 64, **deposit)
        client.force_login(superuser)
        overview._NODE_CACHE.clear()
        page = client.get("/admin/").content.decode()
        assert "1 open deposit of unknown amount" in page
        assert "until a rescan or a full reconciliation finds it" in page
        assert "0.30000000 BTC" in page and "+0.20000000 BTC" in page
        figures = quick(wallet)  # the one home of these figures, asking the node itself
        assert (figures.awaiting_credit, figures.unknown_amount) == (30_000_000, 1)
        assert figures.difference == 20_000_000
        assert "listreceivedbyaddress" not in _methods(double)
        assert "getbalance" in _methods(double)
    finally:
        double.stop()
