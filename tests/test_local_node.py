"""The suite's and the demo's regtest node (devtools/localservices.py) stops at once, even
while one of its -walletnotify commands runs."""

import time

import pytest

from devtools.localservices import LocalBitcoind
from ops.processes import group_members
from tests.support import PYTHON, wait_until

pytestmark = pytest.mark.node


def test_it_stops_at_once_while_a_walletnotify_command_is_still_running(tmp_path):
    done = tmp_path / "notified"
    # A notify command that outlives the stop request: the demo's walletnotify (a Django
    # process) under a loaded machine. bitcoind runs it through system(), which ignores SIGINT
    # in the whole node process while the command runs.
    script = tmp_path / "notify.py"
    script.write_text(f"import sys, time\ntime.sleep(3)\nopen({str(done)!r}, 'a').write('x')\n")
    server = LocalBitcoind(walletnotify=f"{PYTHON} {script} %s").start()
    try:
        server.generate(1)  # a coinbase to the node's wallet: one notification
        wait_until(lambda: len(group_members(server.pid)) > 1, what="the notify command to run")
        started = time.monotonic()
        pid = server.pid
        server.stop()
        took = time.monotonic() - started
    finally:
        server.stop()
    assert group_members(pid) == []
    # The node itself stops in well under a second; the notify command is let finish.
    assert took < 10, f"stop took {took:.1f} s"
    assert done.read_text() == "x"
