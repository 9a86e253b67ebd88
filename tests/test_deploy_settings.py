"""Production settings pass Django's deployment checklist."""

import subprocess
import sys

from tests.support import PRODUCTION_ENV, REPO


def test_it_passes_check_deploy_with_production_settings():
    env = PRODUCTION_ENV
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
