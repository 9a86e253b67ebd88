"""The admin home leads with what needs a person, each count linking to a list filtered to
exactly those rows, refreshed by fetching a small fragment; no developer panel, no raw app list."""

import re

import pytest
from django.utils import timezone

from ledger.models import NetworkTransaction, Wallet

pytestmark = pytest.mark.django_db
FRAGMENT = "/admin/needs-person/"


def _flagged_deposit(wallet, i=1, **kwargs):
    return NetworkTransaction.objects.create(
        currency=wallet.currency,
        wallet=wallet,
        txid=f"{i:064x}",
        type="deposit",
        flagged=True,
        flag_reason="lost confirmations",
        **kwargs,
    )


def _items(page):
    """{key: (count, url)} of the needs-a-person items on a page."""
    return {
        key: (int(n), url.replace("&amp;", "&"))
        for key, url, n in re.findall(
            r'<a class="needs-item[^"]*" data-key="([^"]+)" href="([^"]+)"[^>]*>\s*<strong>(\d+)',
            page,
        )
    }


def test_it_leads_the_home_page_with_what_needs_a_person(client, superuser, db_wallet):
    _flagged_deposit(db_wallet, 1)
    _flagged_deposit(db_wallet, 2)
    Wallet.objects.filter(pk=db_wallet.pk).update(
        last_poll_error="NodeUnreachable: refused", last_poll_error_at=timezone.now()
    )
    client.force_login(superuser)
    page = client.get("/admin/").content.decode()
    assert page.index('id="needs-person"') < page.index('id="dashboard"')
    items = _items(page)
    assert items["flagged_deposits"][0] == 2 and items["nodes_down"][0] == 1
    for key, (n, url) in items.items():
        listed = client.get(url)
        assert listed.status_code == 200, key
        cl = listed.context["cl"]
        assert cl.result_count == n, key
        assert cl.get_filters_params(), key  # a filter is selected: the list does not say "All"


def test_it_leaves_the_developer_panel_and_the_raw_app_list_off_the_home_page(
    client, superuser, db
):
    client.force_login(superuser)
    page = client.get("/admin/").content.decode()
    assert "Balance cache (this process)" not in page
    assert 'class="app-otp_static' not in page and 'class="app-axes' not in page


def test_it_refreshes_the_counts_from_a_fragment_without_a_reload(client, superuser, db_wallet):
    client.force_login(superuser)
    home = client.get("/admin/").content.decode()
    from django.contrib.staticfiles import finders

    # The script is a static file of its own (the Content-Security-Policy allows no inline one).
    assert f'data-refresh="{FRAGMENT}"' in home and "ops/needs_person.js" in home
    assert "fetch(" in open(finders.find("ops/needs_person.js")).read()
    assert _items(client.get(FRAGMENT).content.decode())["flagged_deposits"][0] == 0
    _flagged_deposit(db_wallet)
    fragment = client.get(FRAGMENT)
    assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    assert _items(fragment.content.decode())["flagged_deposits"][0] == 1


def test_it_refuses_the_fragment_to_someone_not_signed_in(client, db):
    assert client.get(FRAGMENT).status_code == 302


def test_it_counts_withdrawals_awaiting_approval_and_links_to_exactly_them(
    client, superuser, db_wallet
):
    from broadcasts.models import OutgoingTransaction
    from ledger import services

    accounts = services.user_accounts("u-w", db_wallet.currency)
    services.post(services.system_account(db_wallet, 910), accounts[201], 10**8, "import")
    for state in ("awaiting_approval", "awaiting_approval", "queued", "needs_attention"):
        lock = services.post(accounts[201], accounts[204], 1000, "pending_outgoing")
        OutgoingTransaction.objects.create(
            wallet=db_wallet,
            currency=db_wallet.currency,
            account=accounts[201],
            hold_account=accounts[204],
            address="bcrt1qx",
            amount=1000,
            lock_entry=lock,
            state=state,
        )
    client.force_login(superuser)
    items = _items(client.get(FRAGMENT).content.decode())
    assert items["awaiting_approval"][0] == 2 and items["outgoing_attention"][0] == 1
    assert items["interrupted_broadcasts"][0] == 0
    for key in ("awaiting_approval", "outgoing_attention", "interrupted_broadcasts"):
        n, url = items[key]
        cl = client.get(url).context["cl"]
        assert cl.result_count == n and cl.get_filters_params(), key
