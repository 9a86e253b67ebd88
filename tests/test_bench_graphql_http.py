"""bench/graphql_http.py --quick runs on the suite's database and prints its figure lines."""

import re
import subprocess

import pytest

from tests.support import PYTHON, REPO

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_prints_the_rate_and_latency_of_both_endpoints(child_env, balance_cache):
    result = subprocess.run(
        [PYTHON, "bench/graphql_http.py", "--quick", "--database-url", child_env["DATABASE_URL"]],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for name in ("trivial view", "graphql balances"):
        assert re.search(rf"^{name} \(best round\): [\d,]+ req/s, p99 [\d.]+ ms$", out, re.M), out
    assert re.search(r"^graphql_vs_trivial: [\d.]+$", out, re.M), out
    assert re.search(r"^graphql_p99_ms: [\d.]+$", out, re.M), out
