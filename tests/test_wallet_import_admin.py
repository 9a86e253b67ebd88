"""The "Import wallet balance" admin page: preview, confirm, errors, permission, history."""

import pytest
from django.contrib.admin.models import LogEntry

from ledger import services
from ledger.models import Transaction
from tests.support import grant, make_currency, make_wallet, pay_from_outside, run_queued_tasks

URL = "/admin/ledger/wallet/import/"
BTC = 10**8


@pytest.fixture
def managed(db, two_nodes):
    ours, outside = two_nodes
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "5", mine=1)
    return make_wallet(make_currency("BTC"), ours), ours, outside


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def test_it_previews_then_imports_on_confirm(admin_client, managed, admin):
    wallet, *_ = managed
    target = services.user_account("treasury", wallet.currency)
    preview = admin_client.post(URL, {"wallet": wallet.pk, "account": target.pk, "preview": "1"})
    assert preview.status_code == 200
    assert b"5.00000000 BTC" in preview.content
    assert not Transaction.objects.filter(kind="import").exists()  # a preview writes nothing
    assert preview.context["form"]["expected"].value() == 5 * BTC
    done = admin_client.post(
        URL, {"wallet": wallet.pk, "account": target.pk, "expected": 5 * BTC, "confirm": "1"}
    )
    assert done.status_code == 302
    assert list(Transaction.objects.filter(kind="import").values_list("amount", "created_by")) == [
        (5 * BTC, admin.pk)
    ]
    entry = LogEntry.objects.get(object_id=str(wallet.pk))
    assert entry.user == admin and "Imported 5.00000000 BTC" in entry.get_change_message()


def test_it_asks_again_when_the_amount_changed(admin_client, managed):
    wallet, ours, outside = managed
    target = services.user_account("treasury", wallet.currency)
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "1", mine=1)
    response = admin_client.post(
        URL,
        {"wallet": wallet.pk, "account": target.pk, "expected": 5 * BTC, "confirm": "1"},
        follow=True,
    )
    assert b"changed from 5.00000000 BTC to 6.00000000 BTC" in response.content
    assert response.context["form"]["expected"].value() == 6 * BTC
    assert not Transaction.objects.filter(kind="import").exists()


def test_it_shows_a_red_alert_when_books_exceed_the_node(admin_client, managed):
    wallet, *_ = managed
    bob = services.user_account("bob", wallet.currency)
    services.post(services.system_account(wallet, 900), bob, 8 * BTC, "deposit")
    response = admin_client.post(URL, {"wallet": wallet.pk, "account": bob.pk, "preview": "1"})
    assert b'id="books-exceed"' in response.content
    assert b"3.00000000 BTC more than the node" in response.content
    assert b'name="confirm"' not in response.content


def test_it_gives_form_errors_for_bad_input(admin_client, managed):
    wallet, *_ = managed
    ltc_account = services.user_account("alice", make_currency("LTC"))
    unknown = admin_client.post(URL, {"wallet": 999999, "account": ltc_account.pk, "preview": "1"})
    assert "Unknown wallet." in unknown.context["form"].errors["wallet"]
    other = admin_client.post(URL, {"wallet": wallet.pk, "account": ltc_account.pk, "preview": "1"})
    assert "LTC account" in str(other.context["form"].non_field_errors())
    assert not Transaction.objects.filter(kind="import").exists()


def test_it_forbids_users_without_the_permission(client, viewer, managed):
    wallet, *_ = managed
    grant(viewer, "ledger.view_wallet")
    client.force_login(viewer)
    assert client.get(URL).status_code == 403
    target = services.user_account("treasury", wallet.currency)
    response = client.post(
        URL, {"wallet": wallet.pk, "account": target.pk, "expected": 5 * BTC, "confirm": "1"}
    )
    assert response.status_code == 403
    assert not Transaction.objects.filter(kind="import").exists()
    assert b"Import wallet balance" not in client.get("/admin/ledger/wallet/").content


def test_it_shows_the_reconciliation_page(admin_client, admin, managed):
    wallet, ours, outside = managed
    address = services.new_receiving_address(wallet, "carol")
    txid = pay_from_outside(ours, outside, address.address, "2")
    grant(admin, "ledger.reconcile_wallet")
    # Recording is a POST (a GET only shows the last one); it queues the full scan and comes
    # back to the page (issue 20); the worker records it, then the page shows it.
    response = admin_client.post(
        f"/admin/ledger/wallet/{wallet.pk}/reconcile/", {"reconcile": "1"}, follow=True
    )
    assert response.status_code == 200
    assert run_queued_tasks(group="reconcile")
    response = admin_client.get(f"/admin/ledger/wallet/{wallet.pk}/reconcile/")
    result = response.context["result"]
    assert (result.node_balance, result.books_balance, result.uncredited) == (7 * BTC, 0, 2 * BTC)
    assert result.unaccounted == 5 * BTC
    assert txid in response.content.decode()  # a deposit the books lack
    wallet.refresh_from_db()
    assert (
        wallet.last_reconciled_at is not None
        and wallet.last_reconciliation["unaccounted"] == 5 * BTC
    )


def test_it_forbids_reconciliation_to_outsiders(client, outsider, managed):
    wallet, *_ = managed
    client.force_login(outsider)
    response = client.get(f"/admin/ledger/wallet/{wallet.pk}/reconcile/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_imports_into_a_new_users_account_on_a_fresh_install(admin_client, managed, admin):
    # No account exists yet (a fresh install): the form opens "treasury"'s when confirmed.
    wallet, *_ = managed
    preview = admin_client.post(URL, {"wallet": wallet.pk, "new_user": "treasury", "preview": "1"})
    assert preview.status_code == 200 and b"5.00000000 BTC" in preview.content
    assert not services.Account.objects.filter(user_id="treasury").exists()  # nothing written
    done = admin_client.post(
        URL, {"wallet": wallet.pk, "new_user": "treasury", "expected": 5 * BTC, "confirm": "1"}
    )
    assert done.status_code == 302
    (entry,) = Transaction.objects.filter(kind="import")
    assert (entry.destination.user_id, entry.destination.code, entry.amount) == (
        "treasury",
        201,
        5 * BTC,
    )
