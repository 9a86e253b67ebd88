"""The second factor is on in production unless switched off, and `check --deploy` says so."""

import subprocess
import sys

from tests.support import PRODUCTION_ENV, REPO

ENV = PRODUCTION_ENV


def _run(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**ENV, **env}, capture_output=True, text=True
    )


def _show(setting):
    """Code printing one setting as a fresh process sees it."""
    return (
        "import django; django.setup(); from django.conf import settings; "
        f"print(settings.{setting})"
    )


def test_it_requires_the_second_factor_when_debug_is_off_and_not_in_the_demo():
    show = _show("OTP_REQUIRED")
    assert _run(show).stdout.strip() == "True"
    assert _run(show, DEBUG="1").stdout.strip() == "False"


def test_it_trusts_x_forwarded_for_only_behind_a_configured_proxy():
    show = _show("TRUSTED_PROXY_COUNT")
    assert _run(show).stdout.strip() == "0"
    assert _run(show, BEHIND_TLS_PROXY="1").stdout.strip() == "1"
    assert _run(show, BEHIND_TLS_PROXY="1", TRUSTED_PROXY_COUNT="2").stdout.strip() == "2"


def test_it_warns_in_check_deploy_when_the_second_factor_is_off_in_production():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env={**ENV, "OTP_REQUIRED": "0"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "cryptoadmin.W010" in result.stderr + result.stdout
