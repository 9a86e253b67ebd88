"""The balance cache is configured by Django settings, parsed once from the environment in
cryptoadmin/settings.py; balances/cache.py reads no environment variable."""

import inspect
import os
import subprocess
import sys

import pytest

from balances import cache


@pytest.fixture
def fresh_cache():
    cache.reset_cache()
    yield
    cache.reset_cache()


def test_it_sizes_and_times_the_cache_from_settings(fresh_cache, settings, db):
    settings.BALANCE_CACHE_MAX_USERS = 3
    settings.BALANCE_CACHE_WAIT_TIMEOUT = 0.25
    settings.BALANCE_CACHE_MAX_STALENESS = 7.5
    settings.BALANCE_CACHE_CROSS_PROCESS = "ttl"
    made = cache.get_cache()
    assert (made.max_users, made.wait_timeout, made.mode, made.ttl) == (3, 0.25, "ttl", 7.5)


def test_it_reads_no_environment_in_the_cache_module():
    source = inspect.getsource(cache)
    assert "os.environ" not in source and "getenv" not in source
    assert not hasattr(cache, "env_number")


def test_it_refuses_a_malformed_number_when_settings_load():
    env = {
        **os.environ,
        "BALANCE_CACHE_MAX_STALENESS": "two",
        "DJANGO_SETTINGS_MODULE": "devtools.settings_test",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "BALANCE_CACHE_MAX_STALENESS='two' is not a number" in done.stderr
