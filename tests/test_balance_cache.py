"""The per-process balance cache: guarded loader, one-query loads, errors, LRU, races."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from balances.cache import (
    ACCOUNT_CODES,
    BalanceCache,
    BalanceLoadError,
    LoadTimeout,
    UnknownUser,
    load_user_balances,
)
from tests.balances_helpers import currency, deposit, in_threads, move, network_account
from tests.support import wait_until

# Conditions other threads bring about are polled often: those threads are waiting on them.
FAST = dict(timeout=10, interval=0.001)


@pytest.mark.django_db(transaction=True)
def test_it_loads_a_cold_user_once_for_200_concurrent_callers(balance_cache):
    btc, eth = currency("BTC"), currency("ETH", decimals=6)
    deposit(network_account(btc), "alice", 150_000_000)
    deposit(network_account(eth), "alice", 7 * 10**6)
    move("alice", btc, 50_000_000, 201, 203)
    calls = []

    def loader(user_id):
        calls.append(user_id)
        # Hold the load until the 199 others are waiting on it: they truly overlap.
        wait_until(lambda: balance_cache.waits == 199, **FAST)
        return load_user_balances(user_id)

    balance_cache.loader = loader
    results = in_threads(
        200,
        lambda i: (
            balance_cache.get_balance("alice", "BTC", 201),
            balance_cache.get_balance("alice", "BTC", 203),
            balance_cache.get_balance("alice", "ETH", 201),
        ),
    )
    assert calls == ["alice"]
    assert set(results) == {(100_000_000, 50_000_000, 7 * 10**6)}
    stats = balance_cache.stats()
    assert stats["loads"] == 1 and stats["waits"] == 199 and stats["users_cached"] == 1


def test_it_gives_every_waiter_the_error_of_a_failed_load_and_the_next_call_retries():
    cache = BalanceCache()
    attempts = []

    def loader(user_id):
        attempts.append(user_id)
        if len(attempts) == 1:
            wait_until(lambda: cache.waits == 9, **FAST)
            raise ConnectionError("database went away")
        return {"BTC": dict.fromkeys(ACCOUNT_CODES, 5)}

    cache.loader = loader
    results = in_threads(10, lambda i: cache.get_balance("bob", "BTC", 201))
    assert all(
        isinstance(r, BalanceLoadError) and "database went away" in str(r) for r in results
    ), results
    assert cache.stats()["users_cached"] == 0 and cache.stats()["load_errors"] == 1
    assert cache.get_balance("bob", "BTC", 201) == 5
    assert len(attempts) == 2


def test_it_stops_waiting_with_a_clear_error_after_the_timeout():
    release = threading.Event()
    cache = BalanceCache(
        wait_timeout=0.2,
        loader=lambda u: release.wait(10) and {"BTC": dict.fromkeys(ACCOUNT_CODES, 1)},
    )
    owner = threading.Thread(target=cache.get_user, args=("carol",))
    owner.start()
    wait_until(lambda: cache.stats()["loading_now"] == 1, **FAST)
    with pytest.raises(
        LoadTimeout, match="gave up after 0.2 s waiting for the balances of user 'carol'"
    ):
        cache.get_user("carol")
    release.set()
    owner.join(10)
    assert cache.get_balance("carol", "BTC", 201) == 1


def test_it_keeps_at_most_max_users_and_drops_the_least_recently_used():
    cache = BalanceCache(
        max_users=3, loader=lambda u: {"BTC": dict.fromkeys(ACCOUNT_CODES, len(u))}
    )
    for user in ("u1", "u22", "u333"):
        cache.get_user(user)
    cache.get_user("u1")  # now the most recently used
    cache.get_user("u4444")
    assert cache.cached_users() == ["u333", "u1", "u4444"]
    assert cache.stats()["evictions"] == 1 and cache.stats()["users_cached"] == 3


def test_it_does_not_store_a_load_that_raced_an_invalidation():
    version = [1]
    cache = BalanceCache(loader=lambda u: {"BTC": dict.fromkeys(ACCOUNT_CODES, version[0])})
    in_query, release = threading.Event(), threading.Event()

    def hook(user_id):  # the load has read version 1 and is about to store it
        in_query.set()
        release.wait(10)

    cache.after_load_hook = hook
    seen = []
    racer = threading.Thread(target=lambda: seen.append(cache.get_balance("dan", "BTC", 201)))
    racer.start()
    assert in_query.wait(10)
    version[0] = 2
    cache.invalidate(["dan"])  # a commit lands while the load is in flight
    cache.after_load_hook = None
    release.set()
    racer.join(10)
    assert seen == [1]  # the racing caller started before the commit
    assert cache.get_balance("dan", "BTC", 201) == 2
    assert cache.stats()["discarded_loads"] == 1 and cache.stats()["loads"] == 2


@pytest.mark.django_db
def test_it_loads_every_currency_and_account_of_a_user_in_one_query():
    btc, eth, ltc = currency("BTC"), currency("ETH", decimals=6), currency("LTC")
    deposit(network_account(btc), "erin", 300)
    deposit(network_account(eth), "erin", 10**6, code=202)
    network_account(ltc)
    move("erin", btc, 100, 201, 230)
    move("erin", btc, 40, 230, 206)
    with CaptureQueriesContext(connection) as queries:
        loaded = load_user_balances("erin")
    assert len(queries) == 1
    assert loaded["BTC"] == {201: 200, 202: 0, 203: 0, 204: 0, 205: 0, 206: 40, 230: 60}
    assert loaded["ETH"][202] == 10**6 and loaded["ETH"][201] == 0
    assert "LTC" not in loaded


@pytest.mark.django_db
def test_it_serves_a_loaded_user_from_memory_without_a_query(
    balance_cache, django_assert_num_queries
):
    btc = currency("BTC")
    deposit(network_account(btc), "fay", 123)
    assert balance_cache.get_balance("fay", "BTC", 201) == 123
    with django_assert_num_queries(0):
        for _ in range(100):
            assert balance_cache.get_balance("fay", "BTC", 201) == 123
            assert balance_cache.get_balance("fay", "DOGE", 205) == 0
    assert balance_cache.stats()["hits"] == 200 and balance_cache.stats()["loads"] == 1


@pytest.mark.django_db
def test_it_raises_unknown_user_without_caching_it(balance_cache):
    with pytest.raises(UnknownUser):
        balance_cache.get_balance("nobody", "BTC", 201)
    btc = currency("BTC")
    deposit(network_account(btc), "nobody", 9)
    assert balance_cache.get_balance("nobody", "BTC", 201) == 9


def test_it_refuses_an_account_code_outside_the_seven():
    cache = BalanceCache(loader=lambda u: {"BTC": dict.fromkeys(ACCOUNT_CODES, 1)})
    with pytest.raises(ValueError, match="900"):
        cache.get_balance("gus", "BTC", 900)
