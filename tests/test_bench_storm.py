"""bench/storm.py --quick runs on the suite's database and prints its figure lines."""

import re
import subprocess

import pytest

from tests.support import PYTHON, REPO

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.node]


def test_it_prints_the_storms_figures_and_the_reference_beside_them(child_env, balance_cache):
    result = subprocess.run(
        [PYTHON, "bench/storm.py", "--quick", "--database-url", child_env["DATABASE_URL"]],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"^storm N=20: .* all credited in \d+ ms; .* ms per deposit$", out, re.M), out
    assert re.search(r"^balances query: user-0 0\.00100000, ", out, re.M), out
    assert re.search(r"^reference design, same storm: all recorded and credited in ", out, re.M)
    assert re.search(r"^storm_credited_s N=20: [\d.]+ \(reference [\d.]+\); ", out, re.M), out
    for figure in ("storm_credited_s", "storm_cpu_ms_per_deposit"):  # its FIGURES
        assert re.search(rf"^{figure}: [\d.]+$", out, re.M), out
