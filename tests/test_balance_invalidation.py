"""Ledger writes invalidate cached balances at commit, in this process and in others."""

import json
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction

from balances import cache as cache_module
from tests.balances_helpers import currency, deposit, network_account

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_shows_a_committed_deposit_in_the_next_read(balance_cache):
    net = network_account(currency("BTC"))
    deposit(net, "alice", 100)
    assert balance_cache.get_balance("alice", "BTC", 201) == 100
    with transaction.atomic():
        deposit(net, "alice", 25)
        # Inside the transaction nothing is invalidated yet: the write may still roll back.
        assert balance_cache.stats()["invalidations"] == 0
    assert balance_cache.stats()["invalidations"] == 1
    assert balance_cache.get_balance("alice", "BTC", 201) == 125


def test_it_ignores_a_rolled_back_deposit(balance_cache):
    net = network_account(currency("BTC"))
    deposit(net, "bob", 100)
    assert balance_cache.get_balance("bob", "BTC", 201) == 100
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            deposit(net, "bob", 50)
            raise RuntimeError("abandon")
    assert balance_cache.stats()["invalidations"] == 0
    assert balance_cache.get_balance("bob", "BTC", 201) == 100
    assert balance_cache.stats()["loads"] == 1  # still served from memory


def test_it_does_not_keep_a_load_that_raced_a_commit(balance_cache):
    net = network_account(currency("BTC"))
    deposit(net, "carol", 10)
    in_load, release = threading.Event(), threading.Event()

    def hook(user_id):  # the racing load has read 10 and is about to store it
        in_load.set()
        release.wait(10)

    balance_cache.after_load_hook = hook
    seen = []

    def racer():
        try:
            seen.append(balance_cache.get_balance("carol", "BTC", 201))
        finally:
            connection.close()

    thread = threading.Thread(target=racer)
    thread.start()
    assert in_load.wait(10)
    deposit(net, "carol", 5)  # commits (autocommit) and invalidates while the load is in flight
    balance_cache.after_load_hook = None
    release.set()
    thread.join(10)
    assert seen == [10]
    assert balance_cache.get_balance("carol", "BTC", 201) == 15
    assert balance_cache.stats()["discarded_loads"] == 1


def test_it_shows_a_deposit_to_a_second_process_within_the_staleness_bound(
    balance_cache, child_env
):
    net = network_account(currency("BTC"))
    deposit(net, "dave", 1000)
    child = subprocess.Popen(
        [sys.executable, "tests/balance_reader.py", "dave", "BTC", "20"],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=child_env["PYTHONPATH"],
    )
    try:
        ready = json.loads(child.stdout.readline() or "{}")
        assert ready.get("ready"), child.stderr.read()
        assert ready["value"] == 1000
        # The child serves from its memory: one load, the rest hits.
        assert ready["stats"]["loads"] == 1 and ready["stats"]["hits"] >= 50
        with transaction.atomic():
            deposit(net, "dave", 1)
            committed_at = time.time()  # just before COMMIT: the measured delay includes it
        seen = json.loads(child.stdout.readline() or "{}")
        assert seen.get("value") == 1001, child.stderr.read()
        delay = seen["seen_at"] - committed_at
        bound = django_settings.BALANCE_CACHE_MAX_STALENESS
        print(f"\ncross-process staleness measured: {delay * 1000:.1f} ms (bound {bound} s)")
        assert delay < bound
        # It learnt through NOTIFY (an invalidation), not because an entry expired.
        assert seen["stats"]["invalidations"] >= 1 and seen["stats"]["loads"] == 2
        assert child.wait(20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_it_clears_memory_and_reconnects_when_the_listener_connection_drops(balance_cache):
    net = network_account(currency("BTC"))
    deposit(net, "erin", 7)
    listener = cache_module.get_listener()
    assert balance_cache.get_balance("erin", "BTC", 201) == 7
    assert balance_cache.stats()["users_cached"] == 1
    old_pid, connects = listener.backend_pid(), listener.connects
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    deadline = time.monotonic() + 10
    while listener.connects == connects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener.disconnects == 1 and listener.connects == connects + 1
    assert listener.backend_pid() != old_pid
    # Notifications sent while it was away are lost: memory was dropped, not kept.
    assert balance_cache.stats()["users_cached"] == 0
    assert balance_cache.stats()["clears"] >= 2  # on loss and again after LISTEN is back
    assert balance_cache.get_balance("erin", "BTC", 201) == 7
    assert balance_cache.stats()["loads"] == 2


def test_it_stops_serving_memory_when_the_listener_misses_heartbeats(balance_cache, monkeypatch):
    net = network_account(currency("BTC"))
    deposit(net, "fay", 4)
    listener = cache_module.get_listener()
    assert balance_cache.get_balance("fay", "BTC", 201) == 4
    listener.stop()  # a wedged listener: no heartbeat, no notification...
    # ...for longer than the bound
    later = time.monotonic() + django_settings.BALANCE_CACHE_MAX_STALENESS + 1
    monkeypatch.setattr(cache_module, "_monotonic", lambda: later)
    # The hot path reads no clock: the watchdog lowers its flag within WATCH_PERIOD.
    deadline = time.monotonic() + 20 * cache_module.WATCH_PERIOD
    while balance_cache.fresh and time.monotonic() < deadline:
        time.sleep(cache_module.WATCH_PERIOD / 5)
    assert balance_cache.fresh is False
    assert balance_cache.get_balance("fay", "BTC", 201) == 4
    assert balance_cache.get_balance("fay", "BTC", 201) == 4
    stats = balance_cache.stats()
    assert stats["loads"] == 3 and stats["hits"] == 0  # every read went to the database
    assert stats["users_cached"] == 0
