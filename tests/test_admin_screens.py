"""The operator's screens: amounts in coins, lists chosen for the job, the small things."""

import logging
import re

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from broadcasts.models import Broadcast
from broadcasts.withdrawals import send_external
from ledger import services
from ledger.models import NetworkTransaction, Wallet
from tests.support import credit_user, grant

pytestmark = pytest.mark.django_db


def raw(units, text):
    """The base-unit integer as a number of its own, not as the digits of a coin amount."""
    return re.search(rf"(?<![\d.]){units}(?!\d)", text) is not None


@pytest.fixture
def su(client, superuser):
    client.force_login(superuser)
    return client


def test_it_shows_amount_and_wallet_on_network_transactions_and_no_cross_for_unflagged(
    su, db_wallet
):
    NetworkTransaction.objects.create(
        currency=db_wallet.currency,
        wallet=db_wallet,
        txid="ab" * 32,
        type="deposit",
        amount=75_000_000,
    )
    NetworkTransaction.objects.create(
        currency=db_wallet.currency,
        wallet=db_wallet,
        txid="cd" * 32,
        type="deposit",
        amount=1,
        flagged=True,
        flag_reason="lost confirmations after credit",
    )
    page = su.get("/admin/ledger/networktransaction/").content.decode()
    assert "0.75000000 BTC" in page and not raw(75000000, page)
    assert page.count(f'<td class="field-wallet_name">{db_wallet.name}</td>') == 2
    assert page.count("⚑ flagged") == 1 and "icon-no.svg" not in page
    detail = su.get(
        reverse(
            "admin:ledger_networktransaction_change",
            args=[NetworkTransaction.objects.get(txid="ab" * 32).pk],
        )
    ).content.decode()
    assert "0.75000000 BTC" in detail and not raw(75000000, detail)
    assert "icon-no.svg" not in detail


def test_it_shows_a_broadcast_s_fee_total_and_outputs_in_coins(su, db_wallet):
    broadcast = Broadcast.objects.create(
        wallet=db_wallet,
        state="broadcasted",
        label="b-1",
        txid="ef" * 32,
        fee=5200,
        total=6_870_043,
        outputs={"mgMMaddress": 6_870_043},
        output_count=1,
        transaction_count=1,
        opened_at=timezone.now(),
    )
    page = su.get(reverse("admin:broadcasts_broadcast_change", args=[broadcast.pk])).content
    page = page.decode()
    assert "0.00005200 BTC" in page and "0.06870043 BTC" in page
    assert not raw(6870043, page) and not raw(5200, page)
    listing = su.get("/admin/broadcasts/broadcast/").content.decode()
    assert "0.06870043 BTC" in listing and 'title="' + "ef" * 32 in listing


def test_it_shows_the_wallet_s_reconciliation_and_settings_as_figures_not_json(su, db_wallet):
    Wallet.objects.filter(pk=db_wallet.pk).update(
        last_reconciled_at=timezone.now(),
        last_reconciliation={
            "wallet_id": db_wallet.pk,
            "node_balance": 700_000_000,
            "books_balance": 500_000_000,
            "uncredited": 100_000_000,
        },
        last_rescan_result={"found": 2, "receives": 9},
    )
    page = su.get(reverse("admin:ledger_wallet_change", args=[db_wallet.pk])).content.decode()
    assert "7.00000000 BTC" in page and "1.00000000 BTC" in page and not raw(700000000, page)
    assert "{&#x27;" not in page and '{"' not in page  # no dict / JSON rendered
    listing = su.get("/admin/ledger/wallet/").content.decode()
    assert "{&#x27;" not in listing


def test_it_offers_no_delete_action_on_wallets(su, db_wallet):
    page = su.get("/admin/ledger/wallet/").content.decode()
    assert "rescan_now" in page and "delete_selected" not in page


def test_it_heads_user_balances_with_account_names_and_shows_coins(client, viewer, db_wallet):
    credit_user(db_wallet, "alice", 123_456_789)
    grant(viewer, "balances.view_user_balances")
    client.force_login(viewer)
    page = client.get("/admin/balances/apitoken/user-balances/?user_id=alice").content.decode()
    assert ">advanced trading locked<" in page and ">advancedTradingLockedBalance<" not in page
    assert "1.23456789 BTC" in page


def test_it_writes_times_with_their_timezone(su, db_wallet):
    NetworkTransaction.objects.create(
        currency=db_wallet.currency, wallet=db_wallet, txid="12" * 32, type="deposit"
    )
    row = NetworkTransaction.objects.get()
    page = su.get(reverse("admin:ledger_networktransaction_change", args=[row.pk])).content
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.decode())


def test_it_says_what_check_now_did_in_words(su, db_wallet, monkeypatch):
    from ledger.confirmations.summary import Summary

    monkeypatch.setattr(
        "ledger.confirmations.entry_points.check_rows",
        lambda rows: Summary(checked=6, round_trips=1),
    )
    row = NetworkTransaction.objects.create(
        currency=db_wallet.currency, wallet=db_wallet, txid="34" * 32, type="deposit"
    )
    response = su.post(
        "/admin/ledger/networktransaction/",
        {"action": "check_now", "_selected_action": [row.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "Checked: 6 transactions checked." in text and "round_trips" not in text


def test_it_takes_the_import_account_by_user_id_and_code(su, db_wallet):
    treasury = services.user_account("treasury", db_wallet.currency)
    staking = services.user_account("treasury", db_wallet.currency, 205)
    from ledger.admin_views import ImportForm

    form = ImportForm({"wallet": str(db_wallet.pk), "account": "treasury"})
    form.is_valid()
    assert form.cleaned_data["account"] == treasury
    form = ImportForm({"wallet": str(db_wallet.pk), "account": "treasury 205"})
    form.is_valid()
    assert form.cleaned_data["account"] == staking
    form = ImportForm({"wallet": str(db_wallet.pk), "account": "nobody"})
    assert not form.is_valid() and "Unknown account." in str(form.errors)
    page = su.get("/admin/ledger/wallet/import/").content.decode()
    assert "admin-autocomplete" in page  # the account picker
    found = su.get(
        "/admin/autocomplete/",
        {
            "term": "treasury 205",
            "app_label": "ledger",
            "model_name": "transaction",
            "field_name": "destination",
        },
    ).json()
    assert [r["id"] for r in found["results"]] == [str(staking.pk)]


def test_it_redirects_the_site_root_to_the_admin(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_it_labels_the_chart_through_the_current_hour(db):
    from ops import overview

    series = overview.deposits_per_hour()
    svg = str(overview.bar_chart_svg(series))
    labels = re.findall(r'fill="#666">(\d\d)</text>', svg)
    assert labels[-1] == series[-1][0].strftime("%H")


def test_it_prints_the_broadcast_fee_in_coins(wallet, node):
    import io

    from django.core.management import call_command

    send_external(credit_user(wallet, "gina", 10**6), node.rpc("getnewaddress"), 50_000)
    out = io.StringIO()
    call_command("broadcast", "--wallet", wallet.name, stdout=out)
    fee = Broadcast.objects.get().fee
    assert f"total fee: {wallet.currency.amount(fee)}" in out.getvalue()
    assert "base units" not in out.getvalue()


def test_it_logs_each_4xx_once(client, db):
    """In development (DEBUG) Django's own console handler printed each 4xx beside the root's."""
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Not Found", (), None
    )
    with override_settings(DEBUG=True):
        emitting = []
        logger = logging.getLogger("django.request")
        while logger:
            emitting += [
                h
                for h in logger.handlers
                if not type(h).__module__.startswith("_pytest")
                and record.levelno >= h.level
                and h.filter(record)
            ]
            logger = logger.parent if logger.propagate else None
    assert len(emitting) == 1
