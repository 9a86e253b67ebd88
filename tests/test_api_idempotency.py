"""Idempotency keys (api/idempotency.py) in process: the first answer replayed, another request
under a used key refused, keys per token, the key committed with its money or not at all."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api import idempotency
from api.models import IdempotencyKey
from cryptoadmin import faults
from ledger import services
from ledger.models import Transaction
from tests.api_helpers import call, error, move, new_key, token
from tests.balances_helpers import currency, deposit, in_threads, network_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def btc():
    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    return cur


def body(amount="0.10000000", to="bob"):
    return {"currency": "BTC", "transfers": [move("alice", "balance", to, "balance", amount)]}


def post(raw, key, data):
    return call("POST", "/api/v1/transfers", raw, data, key=key)


def alice(cur):
    return services.balance(services.user_account("alice", cur, 201))


def test_it_returns_the_first_answer_for_the_same_key_and_body_without_moving_again(btc):
    raw, key = token("transfers:write"), new_key()
    first = post(raw, key, body())
    again = post(raw, key, body())
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert alice(btc) == 90_000_000 and Transaction.objects.filter(kind="internal").count() == 1


def test_it_refuses_the_same_key_with_another_body_with_422(btc):
    raw, key = token("transfers:write"), new_key()
    assert post(raw, key, body()).status_code == 201
    other = post(raw, key, body(amount="0.2"))
    assert other.status_code == 422 and error(other)["code"] == "idempotency_key_reused"
    assert alice(btc) == 90_000_000


def test_it_keeps_keys_per_token(btc):
    key = new_key()
    assert post(token("transfers:write", name="a"), key, body()).status_code == 201
    second = post(token("transfers:write", name="b"), key, body())
    assert second.status_code == 201 and not second.has_header("Idempotent-Replayed")
    assert alice(btc) == 80_000_000


def test_it_stores_nothing_for_a_refused_request_so_a_retry_runs_again(btc):
    raw, key = token("transfers:write"), new_key()
    refused = post(raw, key, body(amount="2"))
    assert refused.status_code == 422 and not IdempotencyKey.objects.exists()
    deposit(network_account_of(btc), "alice", 100_000_000)
    assert post(raw, key, body(amount="2")).status_code == 201
    assert alice(btc) == 0


def network_account_of(cur):
    from ledger.models import Account

    return Account.objects.get(currency=cur, code=900)


def test_it_commits_the_key_with_the_money_or_neither(btc):
    raw, key = token("transfers:write"), new_key()
    with faults.armed({"api.idempotency.before_commit": "raise"}):
        crashed = post(raw, key, body())
    assert crashed.status_code == 500 and error(crashed)["code"] == "internal_error"
    assert not IdempotencyKey.objects.exists() and alice(btc) == 100_000_000
    assert post(raw, key, body()).status_code == 201
    stored = IdempotencyKey.objects.get()
    assert stored.status == 201 and stored.object_id == ""
    assert alice(btc) == 90_000_000


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "a\tb"])
def test_it_refuses_a_key_that_is_not_1_to_255_printable_characters(btc, key):
    response = post(token("transfers:write"), key, body())
    assert response.status_code == 400 and error(response)["field"] == "Idempotency-Key"
    assert alice(btc) == 100_000_000


def test_it_keeps_keys_at_least_24_hours(btc, settings):
    settings.IDEMPOTENCY_KEY_HOURS = 1  # a shorter setting is raised to the promised 24 hours
    raw, key = token("transfers:write"), new_key()
    post(raw, key, body())
    assert idempotency.purge(timezone.now() + timedelta(hours=23)) == 0
    assert idempotency.purge(timezone.now() + timedelta(hours=25)) == 1
    assert post(raw, key, body()).status_code == 201  # forgotten: a new request
    assert alice(btc) == 80_000_000


@pytest.mark.django_db(transaction=True)
def test_it_moves_money_once_when_two_requests_with_one_key_race():
    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    raw, key = token("transfers:write"), new_key()
    results = in_threads(4, lambda i: post(raw, key, body()))
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    bodies = {r.content for r in results if r.status_code == 201}
    assert len(bodies) == 1
    assert alice(cur) == 90_000_000 and Transaction.objects.filter(kind="internal").count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_answers_409_while_a_request_with_the_key_is_still_running(settings):
    settings.IDEMPOTENCY_WAIT_MS = 200
    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    raw, key = token("transfers:write"), new_key()
    # The first request to take the key holds it a second before committing.
    with faults.armed({"api.idempotency.before_commit": "1*pause:1"}):
        results = in_threads(2, lambda i: post(raw, key, body()))
    assert sorted(r.status_code for r in results) == [201, 409]
    (busy,) = [r for r in results if r.status_code == 409]
    assert error(busy)["code"] == "request_in_flight"
    assert alice(cur) == 90_000_000
    assert post(raw, key, body())["Idempotent-Replayed"] == "true"
