"""bench/events.py --quick runs and prints its figure lines (the figures are not judged here)."""

import re

from tests.support import run_python


def test_it_runs_the_events_benchmark_quickly_and_prints_its_figures():
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    done = run_python(env, "bench/events.py", "--quick", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("events_per_second", "commit_to_2xx_p50_ms", "commit_to_2xx_p99_ms"):
        assert re.search(rf"^{name}: \d+(\.\d+)?$", done.stdout, re.M), (name, done.stdout)
