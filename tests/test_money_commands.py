"""The commands that move or check money (cryptoadmin.commands.MoneyCommand) start without
importing the web side, and still refuse a configuration that cannot work."""

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
# manage.py, reporting at exit whether the GraphQL view (the web side) was imported.
RUN = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('web side imported:', 'balances.views' in sys.modules))\n"
    "from django.core.management import execute_from_command_line\n"
    "execute_from_command_line(sys.argv)\n"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return sqlite_child_env(tmp_path_factory.mktemp("commands") / "db.sqlite3")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_it_starts_a_money_command_without_the_web_side(env, command):
    done = run_python(env, "-c", RUN, *command)
    assert "web side imported: False" in done.stdout, (done.stdout, done.stderr[-2000:])
    assert "SystemCheckError" not in done.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_it_refuses_to_run_a_money_command_with_a_lease_margin_under_a_second(env, command):
    done = run_python(dict(env, BROADCAST_LEASE_MARGIN="0"), "-c", RUN, *command)
    assert done.returncode != 0 and "cryptoadmin.E004" in done.stderr, (done.stdout, done.stderr)
