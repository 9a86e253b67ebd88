"""The shape of the code, checked: imports point down the layers, modules stay under about
400 lines and functions under about 40. Today's exceptions are listed with their size; the
lists may only shrink: a new offender, or a listed one grown, fails; so does an entry that no
longer offends (remove it)."""

import ast
from pathlib import Path

from tests.support import REPO

# Layers from the bottom; a module may import its own layer and those below.
BASE = {
    "cryptoadmin.audit",
    "cryptoadmin.commands",
    "cryptoadmin.errors",
    "cryptoadmin.exports",
    "cryptoadmin.faults",
    "cryptoadmin.masking",
    "cryptoadmin.registry",
    "cryptoadmin.settings",
    "cryptoadmin.signin.clientip",
    "cryptoadmin.words",
}
LAYERS = {"ledger": 1, "broadcasts": 2, "balances": 2, "api": 3, "events": 3, "ops": 4}
LAYERS.update(devtools=4, cryptoadmin=5)  # devtools: the local services ops' demo runs
PACKAGES = sorted(LAYERS)
SKIPPED = {"migrations", "__pycache__", ".venv", "node_modules"}

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 40
# path: lines, today's modules over MAX_MODULE_LINES (migrations aside).
LONG_MODULES = {
    "bench/soak.py": 460,
    "broadcasts/admin.py": 632,
    "ledger/admin.py": 517,
    "ledger/backends/blockio.py": 563,
    "ledger/models.py": 597,
    "tests/blockio_server.py": 415,
    "tests/invariants.py": 461,
    "tests/test_fault_harness.py": 567,
}
# "path:function": lines, today's functions over MAX_FUNCTION_LINES (migrations and tests aside).
LONG_FUNCTIONS = {
    "balances/cache.py:_hot_readers": 52,
    "bench/confirmations.py:make_transactions": 49,
    "bench/confirmations.py:measure": 67,
    "broadcasts/admin.py:close_view": 46,
    "broadcasts/broadcaster.py:_held_by_opened": 43,
    "broadcasts/closing.py:close_as_never_left": 43,
    "broadcasts/lost.py:_reverse_entries": 41,
    "broadcasts/signed.py:sign_and_send": 43,
    "broadcasts/withdrawals.py:send_external": 46,
    "ledger/admin_views.py:import_wallet_balance_view": 62,
    "ledger/admin_views.py:reconcile_view": 41,
    "ledger/confirmations/bulk.py:write_changes": 43,
    "ledger/dashboard.py:alerts": 46,
    "ledger/rawtx.py:parse": 41,
    "ledger/reconcile.py:compare": 44,
    "ops/checks.py:check_environment": 78,
    "ops/deploy_checks.py:check_configuration": 51,
    "ops/management/commands/demo.py:handle": 59,
    "ops/overview.py:bar_chart_svg": 42,
}


def layer(module: str) -> int:
    if module in BASE or any(module.startswith(f"{b}.") for b in BASE):
        return 0
    return LAYERS[module.split(".")[0]]


def python_files(*tops):
    for top in tops:
        for path in sorted((REPO / top).rglob("*.py")):
            if not SKIPPED & set(path.relative_to(REPO).parts):
                yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, tree) -> set[str]:
    """The project modules a file imports, `from pkg import module` resolved to the module."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                whole = f"{module}.{alias.name}"
                is_module = (REPO / Path(*whole.split("."))).with_suffix(".py").exists() or (
                    REPO / Path(*whole.split("."))
                ).is_dir()
                found.add(whole if is_module else module)
    return {name for name in found if name.split(".")[0] in LAYERS}


def upward_imports() -> list[str]:
    found = []
    for path in python_files(*PACKAGES):
        source = module_name(path)
        for target in imported(path, ast.parse(path.read_text())):
            if layer(target) > layer(source):
                found.append(f"{source} -> {target}")
    return sorted(found)


def long_modules() -> dict[str, int]:
    tops = [*PACKAGES, "tests", "bench"]
    sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in python_files(*tops)}
    return {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}


def long_functions() -> dict[str, int]:
    found = {}
    for path in python_files(*PACKAGES, "bench"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found[f"{path.relative_to(REPO)}:{node.name}"] = lines
    return found


def compared(today: dict[str, int], allowed: dict[str, int]) -> list[str]:
    problems = [f"{k}: {n} lines, not on the list" for k, n in today.items() if k not in allowed]
    problems += [
        f"{k}: {today[k]} lines, grown from {allowed[k]}"
        for k in today
        if k in allowed and today[k] > allowed[k]
    ]
    problems += [f"{k}: within the limit now, remove its entry" for k in allowed if k not in today]
    return sorted(problems)


def test_it_finds_no_import_pointing_up_the_layers():
    assert upward_imports() == []


def test_it_keeps_modules_under_the_limit_but_for_the_shrinking_list():
    assert compared(long_modules(), LONG_MODULES) == []


def test_it_keeps_functions_under_the_limit_but_for_the_shrinking_list():
    assert compared(long_functions(), LONG_FUNCTIONS) == []


def test_it_sees_an_upward_import_and_a_long_function(tmp_path):
    tree = ast.parse("from ops import health\nimport broadcasts.models\n")
    assert imported(REPO / "ledger" / "example.py", tree) == {"ops.health", "broadcasts.models"}
    assert layer("ops.health") > layer("ledger.example") > layer("cryptoadmin.faults")
    assert compared({"a.py:f": 41}, {}) == ["a.py:f: 41 lines, not on the list"]
    assert compared({"a.py": 500}, {"a.py": 450}) == ["a.py: 500 lines, grown from 450"]
