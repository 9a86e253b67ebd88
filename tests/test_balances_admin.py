"""The "User balances" lookup page and the cache's figures on the admin index."""

import pytest
from django.test import Client

from tests.balances_helpers import currency, deposit, move, network_account
from tests.support import grant

pytestmark = pytest.mark.django_db

URL = "/admin/balances/apitoken/user-balances/"


@pytest.fixture
def viewer_client(viewer):
    grant(viewer, "balances.view_user_balances")
    client = Client()
    client.force_login(viewer)
    return client


def test_it_shows_a_users_balances_through_the_cache(balance_cache, viewer_client):
    btc = currency("BTC")
    deposit(network_account(btc), "u-7", 300_000_000)
    move("u-7", btc, 100_000_000, 201, 204)
    page = viewer_client.get(URL, {"user_id": "u-7"}).content.decode()
    assert '<table id="user-balances"' in page
    assert "2.00000000" in page and "1.00000000" in page
    viewer_client.get(URL, {"user_id": "u-7"})
    assert balance_cache.stats()["loads"] == 1 and balance_cache.stats()["hits"] == 1


def test_it_reports_an_unknown_or_malformed_user_id_on_the_form(balance_cache, viewer_client):
    assert "No user with id" in viewer_client.get(URL, {"user_id": "ghost"}).content.decode()
    assert "Use 1 to 128 letters" in viewer_client.get(URL, {"user_id": "bad id!"}).content.decode()


def test_it_refuses_the_lookup_page_without_the_permission(staff):
    client = Client()
    client.force_login(staff)
    assert client.get(URL, {"user_id": "u-7"}).status_code == 403


def test_it_shows_the_cache_figures_on_the_lookup_page(balance_cache, viewer_client):
    # A developer's figures: on the lookup page, off the admin home (which leads with work).
    deposit(network_account(currency("BTC")), "u-8", 1)
    balance_cache.get_balance("u-8", "BTC", 201)
    balance_cache.get_balance("u-8", "BTC", 201)
    page = viewer_client.get(URL).content.decode()
    assert "Balance cache (this process)" in page
    assert '<td id="bc-hits">1</td>' in page and '<td id="bc-loads">1</td>' in page
