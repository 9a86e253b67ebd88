"""The documented -walletnotify lines (docs/) work as written: bitcoind substitutes %s with a
txid, and the command must be told the currency (without it every notification exited 2)."""

import re
import subprocess

import pytest

from tests.support import REPO

pytestmark = pytest.mark.django_db(transaction=True)

# Where the documentation gives the -walletnotify lines: development and production.
DOCS = ("confirmations.md", "operations.md")


def readme_walletnotify_commands():
    docs = "".join((REPO / "docs" / name).read_text() for name in DOCS)
    return re.findall(r'-walletnotify="([^"]+)"', docs) + re.findall(
        r"-walletnotify=(/\S+ walletnotify \S+ %s)", docs
    )


def test_it_finds_the_walletnotify_lines():
    commands = readme_walletnotify_commands()
    assert len(commands) >= 2, commands
    for command in commands:
        assert re.search(r"walletnotify [A-Z]{2,} %s$", command), command


def test_it_runs_the_confirmations_sections_line_as_bitcoind_would(wallet, node, child_env):
    [command] = [c for c in readme_walletnotify_commands() if c.startswith("<repo>")]
    txid = node.rpc("sendtoaddress", node.rpc("getnewaddress"), "0.001")
    argv = command.replace("<repo>", str(REPO)).replace("%s", txid).split()
    result = subprocess.run(
        argv, cwd="/", env=child_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"BTC {txid}:" in result.stdout
