"""The commands that move or check money (cryptoadmin.commands.MoneyCommand) start without
importing the web side, and still refuse a configuration that cannot work."""

import json

import pytest

from tests.support import run_python, sqlite_child_env

# Each runs to its end (or to a clear refusal) on an empty, migrated database.
COMMANDS = [
    ("broadcast",),
    ("check_interrupted_broadcasts",),
    ("check_balances",),
    ("update_confirmations",),
    ("rescan_addresses", "--currency", "BTC"),
    ("walletnotify", "BTC", "ab" * 32),
    ("import_wallet_balance", "nope", "1", "--yes"),
    ("listen_node", "--wallet", "nope"),
]
# Each command as manage.py runs it, one after the other in one process (a start-up costs a
# child half a second): whether it exited, what it said on stderr, and whether the GraphQL
# view (the web side) had been imported by then.
RUN = """
import contextlib, io, json, sys
from django.core.management import execute_from_command_line
results = []
for command in json.loads(sys.argv[1]):
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            execute_from_command_line(["manage.py", *command])
        except SystemExit as exc:
            code = exc.code
    web = "balances.views" in sys.modules
    results.append({"command": command[0], "code": code, "stderr": err.getvalue(), "web": web})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return sqlite_child_env(tmp_path_factory.mktemp("commands") / "db.sqlite3")


def run_each(env) -> list[dict]:
    done = run_python(env, "-c", RUN, json.dumps(COMMANDS))
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["command"] for r in results] == [c[0] for c in COMMANDS]
    return results


def test_it_starts_every_money_command_without_the_web_side(env):
    for result in run_each(env):
        assert not result["web"], result
        assert "SystemCheckError" not in result["stderr"], result


def test_it_refuses_to_run_a_money_command_with_a_lease_margin_under_a_second(env):
    for result in run_each(dict(env, BROADCAST_LEASE_MARGIN="0")):
        assert result["code"] != 0 and "cryptoadmin.E004" in result["stderr"], result


def test_it_covers_every_command_of_the_money_apps():
    from django.core.management import get_commands, load_command_class

    from cryptoadmin.commands import MoneyCommand

    money = {name: app for name, app in get_commands().items() if app in ("ledger", "broadcasts")}
    assert set(money) == {c[0] for c in COMMANDS}
    for name, app in money.items():
        assert isinstance(load_command_class(app, name), MoneyCommand), name
