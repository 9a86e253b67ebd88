"""The accounts list: each account named, with its balance."""

import pytest

from tests.balances_helpers import currency, deposit, move, network_account

pytestmark = pytest.mark.django_db


def test_it_lists_each_accounts_balance(client, viewer):
    btc = currency("BTC")
    deposit(network_account(btc), "u-b", 300_000_000)
    move("u-b", btc, 100_000_000, 201, 204)
    client.force_login(viewer)
    page = client.get("/admin/ledger/account/", {"q": "u-b"}).content.decode()
    assert "field-balance" in page
    assert "2.00000000 BTC" in page and "1.00000000 BTC" in page
