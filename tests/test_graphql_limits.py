"""/graphql refuses abusive documents before they reach the database (issue 13, point 4).

The attacker holds a valid API token and sends one request with hundreds of aliases, a deep
or huge document, or an introspection query."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from balances.models import ApiToken
from tests.balances_helpers import currency, deposit, network_account

pytestmark = pytest.mark.django_db

FIELDS = "id enabled balance lockedBalance"


@pytest.fixture
def token():
    raw = ApiToken.issue("wallets app")[1]
    # One request first, so last_used_at is fresh and authentication is one SELECT from here on.
    _post("query { __typename }", raw)
    return raw


def _post(query, token):
    return Client().post(
        "/graphql",
        {"query": query},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def _ask_counting(query, token):
    with CaptureQueriesContext(connection) as queries:
        response = _post(query, token)
    return response, [q["sql"] for q in queries.captured_queries]


def _only_the_token_lookup(sqls):
    assert len(sqls) == 1, sqls
    assert "balances_apitoken" in sqls[0]


def test_it_refuses_300_aliases_with_a_graphql_error_and_no_balance_query(balance_cache, token):
    network = network_account(currency("BTC"))
    for i in range(300):
        deposit(network, f"u-{i}", 1000 + i)
    query = (
        "query { "
        + " ".join(f'a{i}: user(id: "u-{i}") {{ currencies {{ {FIELDS} }} }}' for i in range(300))
        + " }"
    )
    response, sqls = _ask_counting(query, token)
    body = response.json()
    assert body.get("data") is None, str(body)[:300]
    # Refused by whichever limit trips first (this document is also over the token limit).
    assert any(
        word in error["message"].lower()
        for error in body["errors"]
        for word in ("aliases", "tokens")
    )
    _only_the_token_lookup(sqls)
    assert balance_cache.stats()["loads"] == 0  # the shared cache was not churned


def test_it_refuses_a_document_with_too_many_tokens(balance_cache, token):
    # No aliases and shallow, but huge: the parser stops counting at the limit.
    ids = " ".join(["id"] * 5000)
    query = f'query {{ user(id: "u-1") {{ currencies {{ {ids} }} }} }}'
    response, sqls = _ask_counting(query, token)
    body = response.json()
    assert body.get("data") is None
    assert any("token" in error["message"].lower() for error in body["errors"]), body["errors"]
    _only_the_token_lookup(sqls)


def test_it_refuses_a_query_deeper_than_the_limit(balance_cache, settings):
    # This schema has no recursive type, so the balances query itself is the deepest one can go
    # (depth 2 as the limiter counts: user, currencies); the limiter is proved by lowering the
    # limit below it.
    from balances.schema import build_schema

    settings.GRAPHQL_MAX_DEPTH = 1
    result = build_schema().execute_sync('query { user(id: "u-1") { currencies { id } } }')
    assert result.data is None
    assert any("depth" in error.message.lower() for error in result.errors), result.errors


def test_it_refuses_more_aliases_than_the_limit_in_a_small_document(balance_cache, token):
    query = (
        "query { "
        + " ".join(f'a{i}: user(id: "u-{i}") {{ currencies {{ id }} }}' for i in range(11))
        + " }"
    )
    response, sqls = _ask_counting(query, token)
    body = response.json()
    assert body.get("data") is None
    assert any("aliases" in error["message"].lower() for error in body["errors"]), body["errors"]
    _only_the_token_lookup(sqls)


def test_it_turns_introspection_off_when_debug_is_off(balance_cache, token):
    response, sqls = _ask_counting("query { __schema { types { name } } }", token)
    body = response.json()
    assert body.get("data") is None
    assert any("introspection" in error["message"].lower() for error in body["errors"]), body[
        "errors"
    ]
    _only_the_token_lookup(sqls)


@pytest.mark.parametrize(
    "query",
    [
        'query { user(id: "u-1") { currencies { lockedBalanc } } }',  # a field
        'query { user(idd: "u-1") { currencies { id } } }',  # an argument
        "query { user { currencie { id } } }",
        "query q($id: Strin!) { user(id: $id) { currencies { id } } }",  # a type
        'query { user(id: "u-1") { ... on UserBalance { currencies { id } } } }',
    ],
)
def test_it_suggests_no_names_when_introspection_is_off(balance_cache, token, query):
    body = _post(query, token).json()
    assert body.get("errors"), body
    for error in body["errors"]:
        assert "did you mean" not in error["message"].lower(), error["message"]


def test_it_still_answers_the_balances_query_within_the_limits(balance_cache, token):
    btc = currency("BTC")
    deposit(network_account(btc), "u-1", 150_000_000)
    query = (
        'query { user(id: "u-1") { currencies { id enabled balance advancedTradingBalance '
        "advancedTradingLockedBalance lockedBalance withdrawLockedBalance stakingLockedBalance "
        "activeStakingBalance } } }"
    )
    body = _post(query, token).json()
    assert "errors" not in body, body
    assert body["data"]["user"]["currencies"][0]["balance"] == "1.50000000"
