"""The node listener (manage.py listen_node) against a real regtest node's ZMQ feed."""

import os
import subprocess
import threading
import time

import pytest

from ledger import services
from ledger.models import NetworkTransaction, Transaction
from tests.support import PYTHON, REPO, make_currency, make_wallet, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def zmq_nodes(fresh_node):
    outside = fresh_node()
    ours = fresh_node(peer=outside, zmq=True)
    outside.generate(101)
    wait_until(lambda: ours.rpc("getblockcount") == 101, what="our node to sync")
    return ours, outside


class Child:
    """The listener as the process manager runs it, its output collected line by line."""

    def __init__(self, env, *args):
        self.proc = subprocess.Popen(
            [PYTHON, "manage.py", "listen_node", "-v", "2", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def saw(self, text):
        return any(text in line for line in self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def listened_wallet(ours):
    """A BTC wallet on `ours` with its ZMQ feed set (credit at 2, polled to 4 confirmations)
    and alice's receiving address on it."""
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    wallet.backend_settings["zmq"] = ours.zmq_url
    wallet.save()
    return wallet, services.new_receiving_address(wallet, "alice")


def deposit_row(txid):
    return NetworkTransaction.objects.filter(txid=txid, type="deposit").first()


def test_it_records_a_deposit_at_once_and_polls_on_a_block_even_across_a_node_restart(
    zmq_nodes, child_env
):
    ours, outside = zmq_nodes
    wallet, address = listened_wallet(ours)
    # No resync poll during the test: whatever is recorded comes from the feed.
    child = Child(child_env, "--resync", "3600")
    try:
        wait_until(lambda: child.saw(": start:"), what=f"the listener to start: {child.lines}")
        sent = time.monotonic()
        txid = outside.rpc("sendtoaddress", address.address, "0.7")
        row = wait_until(
            lambda: deposit_row(txid), timeout=10, what="the deposit to be recorded from the feed"
        )
        latency = time.monotonic() - sent
        assert row.credited_at is None and row.block_height is None
        assert latency < 5, (
            latency
        )  # relay to our node + one batch; the benchmark measures it closely

        outside.generate(
            2
        )  # two blocks: the crediting threshold, reached by the block's poll cycle
        wait_until(
            lambda: Transaction.objects.filter(network_transaction__txid=txid).exists(),
            timeout=15,
            what=f"the credit from a block's poll cycle: {child.lines[-5:]}",
        )
        assert services.balance(services.user_account("alice", wallet.currency)) == 70_000_000
        assert child.saw(": block:")

        ours.restart()  # the node goes away and comes back on the same ports: ZMQ reconnects
        wait_until(
            lambda: ours.rpc("getconnectioncount") > 0, what="our node to reconnect to its peer"
        )
        again = outside.rpc("sendtoaddress", address.address, "0.2")
        wait_until(
            lambda: deposit_row(again),
            timeout=20,
            what=f"a deposit after the restart: {child.lines[-5:]}",
        )
        outside.generate(1)
        wait_until(
            lambda: NetworkTransaction.objects.filter(
                txid=again, block_height__isnull=False
            ).exists(),
            timeout=15,
            what="the block after the restart to place it",
        )
        assert deposit_row(txid).state == "open"  # credited, open until 4 confirmations
    finally:
        code = child.stop()
    assert code == 0, child.lines[-20:]
    assert Transaction.objects.filter(network_transaction__txid=txid).count() == 1


def listener_backends(others=frozenset()):
    """The database connections of other processes, less `others` (connections that were
    there before the listener started: a balance-cache LISTEN thread an earlier test of this
    worker left running, say)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return {pid for (pid,) in cursor.fetchall()} - others


def test_it_keeps_one_database_connection_and_survives_losing_it(zmq_nodes, child_env):
    ours, outside = zmq_nodes
    wallet, address = listened_wallet(ours)
    others = frozenset(listener_backends())
    child = Child(child_env, "--resync", "3600")
    try:
        wait_until(lambda: child.saw(": start:"), what=f"the listener to start: {child.lines}")
        first = outside.rpc("sendtoaddress", address.address, "0.3")
        wait_until(lambda: deposit_row(first), timeout=10, what="the deposit from the feed")
        (kept,) = listener_backends(others)
        outside.generate(1)
        wait_until(
            lambda: deposit_row(first).block_height is not None,
            timeout=15,
            what=f"the block's cycle: {child.lines[-5:]}",
        )
        # A connection per wake-up cost more CPU than the cycle: the same one serves them all.
        assert listener_backends(others) == {kept}

        # The database drops it (a restart, an administrator): the next wake-up reconnects.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [kept])
        wait_until(lambda: kept not in listener_backends(others), what="the connection to end")
        second = outside.rpc("sendtoaddress", address.address, "0.4")
        wait_until(
            lambda: deposit_row(second),
            timeout=10,
            what=f"a deposit after the connection was lost: {child.lines[-5:]}",
        )
        assert child.proc.poll() is None, child.lines[-20:]
    finally:
        code = child.stop()
    assert code == 0, child.lines[-20:]


def test_it_records_what_the_thin_walletnotify_hands_over_from_a_node_without_zmq(
    fresh_node, child_env
):
    outside = fresh_node()
    notify = f"{PYTHON} -I -S {REPO / 'ledger' / 'walletnotify_push.py'} BTC %s"
    node_env = dict(os.environ, WALLETNOTIFY_SOCKET=child_env["WALLETNOTIFY_SOCKET"])
    ours = fresh_node(peer=outside, walletnotify=notify, env=node_env)  # no ZMQ feed
    outside.generate(101)
    wait_until(lambda: ours.rpc("getblockcount") == 101, what="our node to sync")
    wallet = make_wallet(make_currency("BTC", crediting_threshold=1, polling_threshold=2), ours)
    address = services.new_receiving_address(wallet, "bob")
    child = Child(child_env, "--resync", "3600")  # no resync cycle: only the socket can tell it
    try:
        wait_until(lambda: child.saw(": start:"), what=f"the listener to start: {child.lines}")
        txid = outside.rpc("sendtoaddress", address.address, "0.3")
        row = wait_until(  # the relay from outside to our node takes seconds on a busy machine
            lambda: deposit_row(txid), timeout=30, what=f"the notified deposit: {child.lines}"
        )
        assert row.block_height is None
        # The listener says so once its batch is done, a moment after the row commits.
        wait_until(lambda: child.saw("walletnotify, 1 transaction(s)"), what="the batch's line")
        outside.generate(1)  # bitcoind notifies again when it is mined: credited at 1
        wait_until(
            lambda: Transaction.objects.filter(network_transaction__txid=txid).exists(),
            timeout=30,
            what=f"the credit from the mined notification: {child.lines[-5:]}",
        )
        assert services.balance(services.user_account("bob", wallet.currency)) == 30_000_000
    finally:
        assert child.stop() == 0, "\n".join(child.lines[-30:])
