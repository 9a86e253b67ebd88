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


def test_it_shows_awaiting_credit_apart_and_the_difference_as_reconcile_computes_it(
    client, superuser, two_nodes
):
    from ledger.reconcile import reconcile
    from tests.support import make_currency, make_wallet, pay_from_outside

    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    address = services.new_receiving_address(wallet, "alice")
    pay_from_outside(ours, outside, address.address, "0.75")  # received, not credited yet
    overview._NODE_CACHE.clear()
    row = overview.wallet_rows()[0]
    assert (row["difference_units"], row["awaiting_units"]) == (0, 75_000_000)
    assert row["difference_units"] == reconcile(wallet).unaccounted
    client.force_login(superuser)
    page = client.get("/admin/").content.decode()
    assert "0.75000000 BTC" in page
    assert re.search(r'color:#2e7d32;font-weight:600"[^>]*>0\.00000000 BTC<', page)
