"""Bad configuration stops start-up with a message that says what to fix."""

import subprocess
import sys

from tests.support import REPO


def _manage(*args, **env):
    base = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
        "HOME": "/tmp",
    }
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=base, capture_output=True, text=True
    )


def test_it_refuses_to_start_without_a_secret_key_in_production():
    result = _manage(
        "check", DEBUG="0", ALLOWED_HOSTS="example.com", DATABASE_URL="sqlite:////tmp/x.sqlite3"
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in result.stderr


def test_it_starts_in_debug_without_a_secret_key():
    result = _manage("check", DEBUG="1", DATABASE_URL="sqlite:////tmp/x.sqlite3")
    assert result.returncode == 0, result.stderr


def test_it_names_a_bad_database_url():
    result = _manage("check", DEBUG="1", DATABASE_URL="mysqlx://what")
    assert result.returncode != 0
    assert "DATABASE_URL could not be parsed" in result.stderr


def test_it_names_a_bad_boolean():
    result = _manage("check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_it_refuses_empty_allowed_hosts_in_production():
    result = _manage(
        "check", DEBUG="0", SECRET_KEY="x" * 60, DATABASE_URL="sqlite:////tmp/x.sqlite3"
    )
    assert result.returncode != 0
    assert "cryptoadmin.E002" in result.stderr


def test_it_refuses_a_send_lease_without_margin_or_a_nonce_window_past_the_hour():
    result = _manage("check", DEBUG="1", BROADCAST_LEASE_MARGIN="0", BLOCKIO_NONCE_WINDOW="3600")
    assert result.returncode != 0
    assert "cryptoadmin.E004" in result.stderr and "cryptoadmin.E005" in result.stderr


def test_it_refuses_a_guessable_health_token():
    result = _manage(
        "check", DEBUG="1", DATABASE_URL="sqlite:////tmp/x.sqlite3", HEALTH_TOKEN="short"
    )
    assert result.returncode != 0
    assert "cryptoadmin.E020" in result.stderr
    ok = _manage("check", DEBUG="1", DATABASE_URL="sqlite:////tmp/x.sqlite3", HEALTH_TOKEN="t" * 40)
    assert ok.returncode == 0, ok.stderr
