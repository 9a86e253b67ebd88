"""Production settings pass Django's deployment checklist."""

import subprocess
import sys

from tests.support import REPO


def test_it_passes_check_deploy_with_production_settings():
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
        "DEBUG": "0",
        "SECRET_KEY": "k" * 20 + "Xy9-PqR7_zT3-wV5_nB1-mL8_cD6-fG2-hJ4",
        "ALLOWED_HOSTS": "admin.example.com",
        "DATABASE_URL": "sqlite:////tmp/deploy-check.sqlite3",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
