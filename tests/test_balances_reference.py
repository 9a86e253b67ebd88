"""A hot balances request runs no SQL: API tokens and currencies are cached beside the balances,
invalidated across processes by the tables' triggers; the document is parsed and validated once."""

import json
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from strawberry.extensions.validation_cache import _get_validate_cache

from balances import cache as cache_module
from balances.models import ApiToken
from balances.schema import DOCUMENT_CACHE_SIZE
from tests.balances_helpers import currency, deposit, network_account
from tests.support import wait_until
from tests.test_graphql import ask, balances_query


def settled(listener):
    """Wait until the listener has applied every notification of the commits made so far."""
    mark = time.monotonic()
    wait_until(lambda: listener.alive_at > mark, timeout=10, interval=0.01, what="a heartbeat")


@pytest.mark.django_db(transaction=True)
def test_it_serves_a_hot_balances_request_without_sql(balance_cache):
    deposit(network_account(currency("BTC")), "u-1", 42)
    raw = ApiToken.issue("wallets app")[1]
    client = Client()
    assert ask(balances_query("u-1"), raw, client).status_code == 200  # warms the caches
    settled(cache_module.get_listener())
    assert ask(balances_query("u-1"), raw, client).status_code == 200  # reloads what that cleared
    for _ in range(3):
        with CaptureQueriesContext(connection) as captured:
            response = ask(balances_query("u-1"), raw, client)
        assert response.status_code == 200
        assert response.json()["data"]["user"]["currencies"][0]["balance"] == "0.00000042"
        assert len(captured) == 0, [q["sql"] for q in captured]


@pytest.mark.django_db
def test_it_parses_and_validates_a_repeated_document_once(balance_cache):
    deposit(network_account(currency("BTC")), "u-2", 7)
    raw = ApiToken.issue("wallets app")[1]
    query = balances_query("u-2")
    assert ask(query, raw).status_code == 200
    before = _get_validate_cache(DOCUMENT_CACHE_SIZE).cache_info()
    assert ask(query, raw).status_code == 200
    after = _get_validate_cache(DOCUMENT_CACHE_SIZE).cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_revoked_token_in_another_process_within_the_staleness_bound(
    balance_cache, child_env
):
    deposit(network_account(currency("BTC")), "u-3", 5)
    token, raw = ApiToken.issue("old app")
    child = subprocess.Popen(
        [sys.executable, "tests/token_reader.py", raw, "u-3", "20"],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=child_env["PYTHONPATH"],
    )
    try:
        ready = json.loads(child.stdout.readline() or "{}")
        assert ready.get("ready"), child.stderr.read()
        assert ready["status"] == 200 and ready["queries"] == 0  # served from its memory
        # A queryset update: no model signal, only the table's trigger tells the other process.
        revoked_at = time.time()
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        seen = json.loads(child.stdout.readline() or "{}")
        assert seen.get("status") == 403, child.stderr.read()
        delay = seen["seen_at"] - revoked_at
        bound = django_settings.BALANCE_CACHE_MAX_STALENESS
        print(f"\nrevoked token refused in another process after {delay * 1000:.1f} ms")
        assert delay < bound
        # It learnt through the notification, not because its rows went stale.
        assert json.loads(child.stdout.readline() or "{}")["reference"] > ready["reference"]
        assert child.wait(20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
