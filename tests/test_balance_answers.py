"""A repeated balances query is answered from the reply kept with its inputs, and computed
afresh as soon as the user's balances (or the currencies) change."""

import pytest
from django.test import Client

from balances import cache as cache_module
from balances.models import ApiToken
from balances.views import answers
from tests.balances_helpers import currency, deposit, network_account
from tests.test_balances_reference import settled
from tests.test_graphql import ask, balances_query

pytestmark = pytest.mark.django_db(transaction=True)


def balance(response):
    return response.json()["data"]["user"]["currencies"][0]["balance"]


def test_it_serves_a_kept_reply_until_the_balance_changes(balance_cache):
    btc = currency("BTC")
    net = network_account(btc)
    deposit(net, "u-5", 10)
    raw, client = ApiToken.issue("wallets app")[1], Client()
    settled(cache_module.get_listener())
    assert balance(ask(balances_query("u-5"), raw, client)) == "0.00000010"
    hits = answers.hits
    assert balance(ask(balances_query("u-5"), raw, client)) == "0.00000010"
    assert answers.hits == hits + 1
    deposit(net, "u-5", 5)  # committed: this process forgets the user at commit
    assert balance(ask(balances_query("u-5"), raw, client)) == "0.00000015"
    assert answers.hits == hits + 1
    btc.decimals = 6
    btc.save()  # a currency change: the rows are new objects, the kept reply is not served
    assert balance(ask(balances_query("u-5"), raw, client)) == "0.000015"
    assert answers.hits == hits + 1


def test_it_keeps_no_reply_that_carries_an_error(balance_cache):
    currency("BTC")
    raw = ApiToken.issue("wallets app")[1]
    settled(cache_module.get_listener())
    for _ in range(2):
        body = ask(balances_query("ghost"), raw).json()
        assert "unknown user" in body["errors"][0]["message"]
    assert all(b"ghost" not in key for key in answers._entries)
