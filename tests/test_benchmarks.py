"""Every benchmark in bench/ runs in its quick mode, so none can rot unnoticed: each must
accept `--quick` (small N, a few seconds, services of its own) and declare the names of its
figure lines in FIGURES; the run must print a `<name>: <value>` line for each. Benchmarks are
found by glob: a new bench/*.py script is run here without anyone adding it."""

import ast
import re
import subprocess

import pytest

from tests.support import PYTHON, REPO

# A benchmark is a script of bench/ (it runs as __main__); a module it imports is not.
BENCHMARKS = sorted(
    path.stem
    for path in (REPO / "bench").glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)


# A benchmark with a test file of its own (tests/test_bench_<name>.py; the soak's is
# tests/test_soak.py) runs there, on the suite's own database and node: not twice.
OWN_TEST = {"soak": "test_soak.py"}
RUN_HERE = [
    name
    for name in BENCHMARKS
    if not (REPO / "tests" / OWN_TEST.get(name, f"test_bench_{name}.py")).exists()
]


def declared_figures(name):
    """The FIGURES tuple of bench/<name>.py, read without importing it."""
    tree = ast.parse((REPO / "bench" / f"{name}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FIGURES" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return ()


def test_it_finds_every_benchmark_with_its_quick_mode_and_figures():
    assert len(BENCHMARKS) >= 6, BENCHMARKS
    for name in BENCHMARKS:
        source = (REPO / "bench" / f"{name}.py").read_text()
        assert "--quick" in source, f"bench/{name}.py has no --quick mode"
        assert declared_figures(name), f"bench/{name}.py declares no FIGURES"


@pytest.mark.node
@pytest.mark.parametrize("name", RUN_HERE)
def test_it_runs_each_benchmark_quickly_and_prints_its_figures(name, tmp_path):
    # A clean environment: the bench starts its own database and nodes, never the suite's.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [PYTHON, f"bench/{name}.py", "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    for figure in declared_figures(name):
        assert re.search(rf"^{re.escape(figure)}: \S", result.stdout, re.M), (
            figure,
            result.stdout[-3000:],
        )
