"""Every environment variable docs/configuration.md's table lists is validated with a message
that names it: bad values stop start-up, values that parse but cannot work fail
`manage.py check`."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

BASE = {
    "PATH": "/usr/bin:/bin",
    "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
    "HOME": "/tmp",
    "DEBUG": "1",
    "DATABASE_URL": "sqlite:////tmp/cryptoadmin-env-check.sqlite3",
}


def check(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env={**BASE, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_names_a_bad_log_level_without_a_traceback():
    result = check(LOG_LEVEL="LOUD")
    assert result.returncode != 0
    assert (
        "LOG_LEVEL='LOUD' is not a log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL."
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_it_accepts_a_lower_case_log_level():
    assert check(LOG_LEVEL="warning").returncode == 0


BAD_BUT_PARSEABLE = {
    "Q_WORKERS": ("0", "Q_WORKERS=0 must be at least 1."),
    "Q_TIMEOUT": ("700", "Q_RETRY=600 must be greater than Q_TIMEOUT=700"),
    "Q_RETRY": ("600", None),
    "LOGIN_MAX_FAILURES": ("0", "LOGIN_MAX_FAILURES=0 must be at least 1."),
    "LOGIN_FAILURE_WINDOW": ("-5", "LOGIN_FAILURE_WINDOW=-5 must be at least 1 second(s)."),
    "HEALTH_NODE_TIMEOUT": ("0", "HEALTH_NODE_TIMEOUT=0 must be at least 1 second(s)."),
    "WEB_WORKERS": ("0", "WEB_WORKERS=0 must be at least 1."),
    "PORT": ("70000", "PORT=70000 is not a TCP port"),
    "ALERT_REMINDER_MINUTES": ("0", "ALERT_REMINDER_MINUTES=0 must be at least 1."),
    "BALANCE_CACHE_MAX_STALENESS": ("0", "BALANCE_CACHE_MAX_STALENESS=0 must be greater than 0."),
    "BALANCE_CACHE_CROSS_PROCESS": (
        "carrier-pigeon",
        "BALANCE_CACHE_CROSS_PROCESS='carrier-pigeon' is not one of",
    ),
    "METRICS_TOKEN": ("short", "METRICS_TOKEN is shorter than 20 characters."),
    "LOGIN_USERNAME_MAX_FAILURES": ("-1", "LOGIN_USERNAME_MAX_FAILURES=-1 is below"),
    "ALERT_URLS": (
        "json://127.0.0.1:9/x, nosuchservice://token@host",
        "ALERT_URLS: URL #2 (nosuchservice://...) is not a notification URL apprise knows.",
    ),
}


def test_it_fails_check_for_values_that_parse_but_cannot_work_naming_each_at_once():
    result = check(**{name: raw for name, (raw, _) in BAD_BUT_PARSEABLE.items()})
    assert result.returncode != 0
    for name, (_, message) in BAD_BUT_PARSEABLE.items():
        assert message is None or message in result.stderr, (name, result.stderr[-3000:])
    assert "Traceback" not in result.stderr


def test_it_passes_check_with_the_defaults():
    result = check()
    assert result.returncode == 0, result.stderr


def test_it_warns_that_no_node_is_called_without_node_hosts_in_production():
    result = check(DEBUG="0", SECRET_KEY="k" * 50, ALLOWED_HOSTS="admin.example.com")
    assert "ops.W020" in result.stderr + result.stdout
    assert (
        "ops.W020"
        not in check(
            DEBUG="0", SECRET_KEY="k" * 50, ALLOWED_HOSTS="admin.example.com", NODE_HOSTS="10.0.0.5"
        ).stderr
    )


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("Q_WORKERS", "many", "Q_WORKERS='many' is not a whole number."),
        (
            "BALANCE_CACHE_MAX_STALENESS",
            "soon",
            "BALANCE_CACHE_MAX_STALENESS='soon' is not a number.",
        ),
    ],
)
def test_it_names_a_number_that_does_not_parse(name, raw, message):
    result = check(**{name: raw})
    assert result.returncode != 0
    assert f"configuration error: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_lists_every_variable_the_code_reads_in_the_configuration_table():
    # docs/configuration.md, or the table of the topic page that owns the setting.
    table = set()
    for page in sorted((REPO / "docs").glob("*.md")):
        table |= set(re.findall(r"^\| `([A-Z_]+)` \|", page.read_text(), re.M))
    read = set()
    for path in list(Path(REPO).glob("*/*.py")) + list(Path(REPO).glob("*/*/*.py")):
        if (
            path.parts[len(REPO.parts)] in ("tests", "bench", ".venv")
            or path.name == "settings_test.py"
        ):
            continue
        text = path.read_text()
        read |= set(
            re.findall(r"""env_(?:int|float|bool|list|number)\(\s*["']([A-Z_]+)["']""", text)
        )
        read |= set(re.findall(r"""os\.environ\.get\(\s*["']([A-Z_]+)["']""", text))
    read -= {
        "DJANGO_SETTINGS_MODULE",
        "CRYPTOADMIN_FAULT",
        "BITCOIND",
        "PG_BIN",
    }  # test and tooling hooks
    assert read - table == set()
    assert len(read) >= 20
