"""/graphql answers the balances query exactly."""

import pytest
from django.test import Client

from balances.models import ApiToken
from tests.balances_helpers import currency, deposit, move, network_account
from tests.support import grant

pytestmark = pytest.mark.django_db

FIELDS = (
    "id enabled balance advancedTradingBalance advancedTradingLockedBalance lockedBalance "
    "withdrawLockedBalance stakingLockedBalance activeStakingBalance"
)


def balances_query(user_id):
    return f'query {{ user(id: "{user_id}") {{ currencies {{ {FIELDS} }} }} }}'


@pytest.fixture
def token():
    return ApiToken.issue("wallets app")[1]


def ask(query, token=None, client=None):
    client = client or Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post("/graphql", {"query": query}, content_type="application/json", **headers)


def test_it_answers_the_balances_query_for_a_user_with_several_currencies(balance_cache, token):
    btc, usdt, ltc = currency("BTC"), currency("USDT", decimals=6), currency("LTC", enabled=False)
    deposit(network_account(btc), "u-1", 250_000_000)
    move("u-1", btc, 100_000_000, 201, 202)  # 202 advanced trading
    move("u-1", btc, 1, 202, 230)  # 230 advanced trading locked
    move("u-1", btc, 2, 201, 203)  # 203 locked
    move("u-1", btc, 3, 201, 204)  # 204 withdraw locked
    move("u-1", btc, 4, 201, 205)  # 205 staking locked
    move("u-1", btc, 5, 205, 206)  # 206 active staking
    deposit(network_account(usdt), "u-1", 1_500_000)
    network_account(ltc)
    response = ask(balances_query("u-1"), token)
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body
    assert body["data"]["user"]["currencies"] == [
        {
            "id": "BTC",
            "enabled": True,
            "balance": "1.49999991",
            "advancedTradingBalance": "0.99999999",
            "advancedTradingLockedBalance": "0.00000001",
            "lockedBalance": "0.00000002",
            "withdrawLockedBalance": "0.00000003",
            "stakingLockedBalance": "-0.00000001",
            "activeStakingBalance": "0.00000005",
        },
        {
            "id": "LTC",
            "enabled": False,
            "balance": "0.00000000",
            "advancedTradingBalance": "0.00000000",
            "advancedTradingLockedBalance": "0.00000000",
            "lockedBalance": "0.00000000",
            "withdrawLockedBalance": "0.00000000",
            "stakingLockedBalance": "0.00000000",
            "activeStakingBalance": "0.00000000",
        },
        {
            "id": "USDT",
            "enabled": True,
            "balance": "1.500000",
            "advancedTradingBalance": "0.000000",
            "advancedTradingLockedBalance": "0.000000",
            "lockedBalance": "0.000000",
            "withdrawLockedBalance": "0.000000",
            "stakingLockedBalance": "0.000000",
            "activeStakingBalance": "0.000000",
        },
    ]
    # Served through the cache: a second request is a hit, not a load.
    assert ask(balances_query("u-1"), token).json() == body
    assert balance_cache.stats()["loads"] == 1 and balance_cache.stats()["hits"] == 1


def test_it_returns_a_graphql_error_for_an_unknown_user(balance_cache, token):
    currency("BTC")
    response = ask(balances_query("ghost"), token)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"user": None}
    assert body["errors"][0]["message"] == "unknown user 'ghost'"


@pytest.mark.parametrize("bad_id", ["", "x" * 129, "a b", "é", "1;DROP", 'a\\"b'])
def test_it_returns_a_graphql_error_for_a_malformed_user_id(balance_cache, token, bad_id):
    response = ask(balances_query(bad_id), token)
    assert response.status_code in (200, 400)
    body = response.json()
    assert body.get("data") in (None, {"user": None})
    assert body["errors"] and "Traceback" not in str(body)
    assert balance_cache.stats()["loads"] == 0


def test_it_reports_a_failed_load_without_internals(balance_cache, token, monkeypatch):
    currency("BTC")
    deposit(network_account(currency("ETH", decimals=8)), "u-2", 1)

    def broken(user_id):
        raise ZeroDivisionError("secret internals")

    balance_cache.loader = broken
    body = ask(balances_query("u-2"), token).json()
    assert body["data"] == {"user": None}
    # A load failure is reported as unavailable, without its internals, a traceback or a 500.
    assert body["errors"][0]["message"] == "balances are unavailable right now, try again"
    assert "secret internals" not in str(body)


def test_it_masks_errors_it_does_not_expect(balance_cache, token, monkeypatch):
    deposit(network_account(currency("BTC")), "u-5", 1)
    monkeypatch.setattr("balances.table.format_units", lambda *a: 1 / 0)
    response = ask(balances_query("u-5"), token)
    assert response.status_code == 200
    assert "division" not in response.content.decode()
    assert response.json()["errors"][0]["message"] == "Unexpected error."


def test_it_serves_a_staff_session_with_permission_and_keeps_csrf(balance_cache, viewer):
    deposit(network_account(currency("BTC")), "u-3", 5)
    grant(viewer, "balances.view_user_balances")
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert ask(balances_query("u-3"), client=client).status_code == 403  # no CSRF token
    client.get("/admin/")  # sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/graphql",
        {"query": balances_query("u-3")},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert response.status_code == 200
    assert response.json()["data"]["user"]["currencies"][0]["balance"] == "0.00000005"


def test_it_exempts_token_requests_from_csrf(balance_cache, token):
    deposit(network_account(currency("BTC")), "u-4", 6)
    response = ask(balances_query("u-4"), token, client=Client(enforce_csrf_checks=True))
    assert response.status_code == 200
    assert response.json()["data"]["user"]["currencies"][0]["balance"] == "0.00000006"


def test_it_logs_an_expected_error_in_one_line_without_a_traceback(balance_cache, token, caplog):
    currency("BTC")
    with caplog.at_level("INFO"):
        ask(balances_query("ghost"), token)
    mentions = [r for r in caplog.records if "unknown user 'ghost'" in r.getMessage()]
    assert len(mentions) == 1 and mentions[0].exc_info is None
    assert mentions[0].levelname == "INFO"


def test_it_still_logs_an_unexpected_error_with_its_traceback(
    balance_cache, token, monkeypatch, caplog
):
    deposit(network_account(currency("BTC")), "u-6", 1)
    monkeypatch.setattr("balances.table.format_units", lambda *a: 1 / 0)
    with caplog.at_level("INFO"):
        ask(balances_query("u-6"), token)
    assert any(r.exc_info and r.levelname == "ERROR" for r in caplog.records)
