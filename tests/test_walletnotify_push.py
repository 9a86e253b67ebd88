"""The thin -walletnotify (ledger/walletnotify_push.py, run by deploy/walletnotify): hands the txid
to the listener's socket without starting Django."""

import os
import re
import resource
import socket
import subprocess

from ledger import txids
from ledger import walletnotify_push as push
from tests.support import PYTHON, REPO

SCRIPT = str(REPO / "ledger" / "walletnotify_push.py")
TXID = "ab" * 32


def run(*args, socket_path):
    env = {"PATH": "/usr/bin:/bin", "WALLETNOTIFY_SOCKET": socket_path}
    return subprocess.run(
        [PYTHON, "-I", "-S", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=30
    )


def bound(tmp_path):
    path = str(tmp_path / "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    return sock, path


def test_it_hands_the_txid_over_without_django_in_a_few_ms_of_cpu(tmp_path):
    sock, path = bound(tmp_path)
    calls = 20
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    received = []
    for _ in range(calls):
        assert run("btc", TXID.upper(), socket_path=path).returncode == 0
        received.append(sock.recv(512))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert received == [f"BTC {TXID}".encode()] * calls
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / calls
    print(f"\nthin walletnotify: {cpu * 1000:.1f} ms of CPU per call (target < 30 ms)")


def test_it_refuses_bad_input_and_says_when_no_listener_took_it(tmp_path):
    sock, path = bound(tmp_path)
    bad = run("BTC", "not-a-txid", socket_path=path)
    assert bad.returncode == 2 and "bad currency or txid" in bad.stderr
    assert run("BTC", socket_path=path).returncode == 2
    sock.close()
    os.unlink(path)
    missing = run("BTC", TXID, socket_path=path)
    assert missing.returncode == 1 and "the next poll will find it" in missing.stderr


def test_it_knows_a_txid_as_the_ledger_does():
    assert push.TXID.pattern == txids.TXID_PATTERN


def test_it_uses_the_settings_default_socket(settings):
    assert push.DEFAULT_SOCKET == str(settings.BASE_DIR / "var" / "walletnotify.sock")
    assert re.search(r"walletnotify_push\.py", (REPO / "deploy" / "walletnotify").read_text())
