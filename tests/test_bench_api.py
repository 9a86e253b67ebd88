"""bench/api.py --quick runs against the suite's PostgreSQL and node and prints its figures."""

import re
import subprocess

import pytest

from tests.support import PYTHON, REPO

pytestmark = pytest.mark.django_db(transaction=True)
LINE = r"^{}: \d+/s p50 [\d.]+ ms p99 [\d.]+ ms \(\d+ requests\)$"


def test_it_prints_the_api_figures_in_quick_mode(child_env, node):
    done = subprocess.run(
        [PYTHON, "bench/api.py", "--quick", "--database-url", child_env["DATABASE_URL"]]
        + ["--node-url", node.url],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("single_transfers", "batch_transfers", "withdrawal_requests"):
        assert re.search(LINE.format(name), done.stdout, re.M), done.stdout
