"""The queue-withdrawal form: one heading, an address box as wide as an address, the only
wallet chosen already, and the user's available balance shown before asking for too much."""

import re

import pytest

from tests.support import credit_user

pytestmark = pytest.mark.django_db
URL = "/admin/broadcasts/outgoingtransaction/queue/"


def test_it_heads_once_fits_an_address_and_preselects_the_only_wallet(client, admin, db_wallet):
    client.force_login(admin)
    page = client.get(URL).content.decode()
    assert re.findall(r"<h1[^>]*>([^<]*)</h1>", page) == ["Queue an outgoing transaction"]
    address = re.search(r'<input[^>]*name="address"[^>]*>', page).group(0)
    assert (
        re.search(r'size="(\d+)"', address)
        and int(re.search(r'size="(\d+)"', address).group(1)) >= 64
    )
    assert re.search(rf'<option value="{db_wallet.pk}" selected>', page)


def test_it_shows_the_users_available_balance_before_queueing(client, admin, db_wallet):
    credit_user(db_wallet, "alice", 150_000_000)
    client.force_login(admin)
    page = client.get(URL, {"user_id": "alice"}).content.decode()
    assert 'id="available"' in page and "1.50000000 BTC" in page
    posted = client.post(
        URL, {"user_id": "alice", "wallet": db_wallet.pk, "address": "", "amount": "", "show": "1"}
    ).content.decode()
    assert "1.50000000 BTC" in posted
