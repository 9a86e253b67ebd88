"""Races and faults with real processes: concurrent broadcasters, a broadcaster killed
mid-send (both close-by-hand paths), and an unreachable node."""

import json
import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from broadcasts.broadcaster import Broadcaster
from broadcasts.chain import find_on_chain
from broadcasts.closing import close_as_broadcasted, close_as_never_left
from broadcasts.lease import busy_wallet_ids
from broadcasts.models import Broadcast, OutgoingTransaction
from broadcasts.selections import interrupted_broadcasts
from broadcasts.withdrawals import send_external
from cryptoadmin.errors import CloseRefused
from ledger import services as ledger
from ledger.backends.bitcoind import BitcoindBackend
from ledger.models import Account
from ledger.money import to_units
from tests.broadcast_helpers import end_lease
from tests.support import PYTHON, REPO, expect_paused, funded_wallet, grant, manage_process

pytestmark = pytest.mark.django_db(transaction=True)


def broadcaster_process(child_env, wallet, pause=None):
    fault = f"broadcast.{pause}=pause:120" if pause else ""
    return manage_process(child_env, "broadcast", "--wallet", wallet.name, fault=fault)


def kill_when_paused(proc, stage):
    expect_paused(proc, f"broadcast.{stage}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_lock_released(wallet):
    # PostgreSQL drops a dead client's advisory lock when it sees the socket close.
    deadline = time.monotonic() + 10
    while wallet.pk in busy_wallet_ids():
        assert time.monotonic() < deadline, "the killed broadcaster's lock was never released"
        time.sleep(0.05)


def node_sends(wallet) -> list[dict]:
    return [e for e in wallet.get_backend().list_transactions(1000) if e["category"] == "send"]


def assert_paid_once(wallet, expected: dict):
    """Every address of `expected` paid exactly once on chain, with exactly its amount."""
    sends = [e for e in node_sends(wallet) if e["address"] in expected]
    assert Counter(e["address"] for e in sends) == Counter(set(expected))
    assert {e["address"]: to_units(-e["amount"], 8) for e in sends} == expected


def assert_books_match_node(wallet, *users):
    holds = [
        ledger.user_account(u, wallet.currency, Account.Code.WITHDRAW_LOCKED).pk for u in users
    ]
    assert sum(ledger.balances(holds).values()) == 0
    assert ledger.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)


@pytest.fixture
def closer(operator):
    return grant(operator, "broadcasts.close_broadcast_by_hand")


def race_processes(child_env, wallet, count):
    """`count` broadcaster processes (tests/broadcast_race_child.py), started and ready."""
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "tests.broadcast_race_child", wallet.name],
            cwd=REPO,
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return procs


def race_round(procs) -> list[dict]:
    """Release every process at once into one broadcast run; each one's result."""
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    replies = []
    for proc in procs:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()  # the process died
        replies.append(json.loads(line))
    return replies


def test_it_sends_every_outgoing_exactly_once_with_4_broadcaster_processes(
    btc, node, fresh_node, child_env
):
    wallet, alice = funded_wallet(btc, fresh_node())
    expected, outputs = {}, []
    procs = race_processes(child_env, wallet, 4)
    try:
        for round_ in range(20):
            for i in range(3):
                address = node.rpc("getnewaddress")
                expected[address] = 100_000 + round_ * 10 + i
                send_external(alice, address, expected[address])
            for reply in race_round(procs):
                assert reply["code"] == 0, reply["err"]
                outputs.append(reply["out"])
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(timeout=30)

    broadcasts = list(Broadcast.objects.all())
    assert len(broadcasts) == 20 and {b.state for b in broadcasts} == {Broadcast.State.BROADCASTED}
    assert sum(out.count("broadcasts sent: 1") for out in outputs) == 20
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {"broadcasted"}
    assert_paid_once(wallet, expected)
    assert {e["txid"] for e in node_sends(wallet)} == {b.txid for b in broadcasts}
    assert_books_match_node(wallet, "alice")


def test_it_settles_a_broadcast_killed_before_sendmany_as_never_left(
    btc, node, fresh_node, child_env, closer
):
    wallet, alice = funded_wallet(btc, fresh_node())
    address = node.rpc("getnewaddress")
    send_external(alice, address, 7_000_000)
    kill_when_paused(broadcaster_process(child_env, wallet, pause="after_open"), "after_open")
    wait_lock_released(wallet)
    killed = Broadcast.objects.get()
    assert (
        killed.in_flight and not interrupted_broadcasts().exists()
    )  # nobody knows it died: its lease runs
    with pytest.raises(CloseRefused, match="still sending"):
        close_as_never_left(killed, closer, "too early")
    end_lease(killed)

    interrupted = Broadcast.objects.get()
    # Killed before it signed anything: nothing can have been sent, so it is the machine's
    # (the next run puts its outgoing back in the queue), not listed for a person; a person
    # may still close it once its lease is over.
    assert interrupted.state == Broadcast.State.OPENED and not interrupted.raw_tx
    assert not interrupted_broadcasts().exists() and node_sends(wallet) == []
    with pytest.raises(CloseRefused, match="do not match|does not confirm"):
        close_as_broadcasted(interrupted, "ab" * 32, closer, "guessing")

    close_as_never_left(interrupted, closer, "node wallet has no tx with the comment")

    interrupted.refresh_from_db()
    assert (interrupted.state, interrupted.closed_by, interrupted.close_method) == (
        "closed_failed",
        closer,
        "never_left",
    )
    assert OutgoingTransaction.objects.get().state == "queued"
    assert Broadcaster(wallet).run().sent == 1
    assert_paid_once(wallet, {address: 7_000_000})
    assert_books_match_node(wallet, "alice")


def test_it_settles_a_broadcast_killed_after_sending_on_the_next_run_without_a_person(
    btc, node, fresh_node, child_env, closer
):
    # Before issue 16 (one sendmany) this broadcast was interrupted and a person closed it as
    # reached the network; signed first, its txid is known before the send and the machine
    # settles it.
    server = fresh_node()
    wallet, alice = funded_wallet(btc, server)
    address = node.rpc("getnewaddress")
    send_external(alice, address, 9_000_000)
    kill_when_paused(
        broadcaster_process(child_env, wallet, pause="after_raw_send"), "after_raw_send"
    )
    wait_lock_released(wallet)
    end_lease(Broadcast.objects.get())

    interrupted = Broadcast.objects.get()
    assert interrupted.state == Broadcast.State.OPENED and len(interrupted.txid) == 64
    assert not interrupted_broadcasts().exists()
    with pytest.raises(CloseRefused, match="it left"):
        close_as_never_left(interrupted, closer, "wrong guess")
    assert find_on_chain(interrupted) == [interrupted.txid]  # the stored txid, first
    txid = interrupted.txid

    result = Broadcaster(wallet).run()

    interrupted.refresh_from_db()
    assert result.sent == 1 and not result.refused
    assert (interrupted.state, interrupted.txid, interrupted.closed_by) == (
        "broadcasted",
        txid,
        None,
    )
    assert interrupted.fee == wallet.get_backend().get_transaction(txid).fee > 0
    assert OutgoingTransaction.objects.get().state == "broadcasted"
    assert tuple(Broadcaster(wallet).run()) == (0, 0)
    assert_paid_once(wallet, {address: 9_000_000})
    assert_books_match_node(wallet, "alice")


class DiesBeforeSend(BitcoindBackend):
    """The node answers the ping and signs, then is gone when the send connects (refused:
    provably not sent)."""

    def send_raw(self, raw, txid, **kwargs):
        self.url = "http://u:p@127.0.0.1:9"
        return super().send_raw(raw, txid, **kwargs)


def test_it_marks_nothing_and_loses_nothing_when_the_node_is_unreachable(btc, node, fresh_node):
    server = fresh_node()
    wallet, alice = funded_wallet(btc, server)
    address = node.rpc("getnewaddress")
    out = send_external(alice, address, 3_000_000)
    server.stop(remove=False)

    result = Broadcaster(wallet).run()

    assert result.sent == 0 and "not answering" in result.message
    assert not Broadcast.objects.exists()
    out.refresh_from_db()
    assert out.state == "queued"
    server.start()
    failed = Broadcaster(wallet, backend=DiesBeforeSend(wallet)).run()
    # Signed and recorded, not sent: it stays the machine's, and the next run sends the same
    # transaction (before issue 16 it failed and its outgoing went back to the queue).
    signed = Broadcast.objects.get()
    assert failed.sent == 0 and not failed.refused
    assert signed.state == Broadcast.State.OPENED and signed.raw_tx
    assert not interrupted_broadcasts().exists()
    assert Broadcaster(wallet).run().sent == 1
    signed.refresh_from_db()
    assert signed.state == Broadcast.State.BROADCASTED
    assert_paid_once(wallet, {address: 3_000_000})
    assert_books_match_node(wallet, "alice")


def test_it_sends_a_broadcast_killed_after_collecting_once_on_the_next_run(
    btc, node, fresh_node, child_env
):
    wallet, alice = funded_wallet(btc, fresh_node())
    address = node.rpc("getnewaddress")
    send_external(alice, address, 4_000_000)
    kill_when_paused(broadcaster_process(child_env, wallet, pause="after_collect"), "after_collect")
    wait_lock_released(wallet)

    collected = Broadcast.objects.get()
    assert collected.state == Broadcast.State.COLLECTED and not interrupted_broadcasts().exists()
    assert Broadcaster(wallet).run().sent == 1
    assert (
        Broadcast.objects.get().state == Broadcast.State.BROADCASTED
    )  # the same one, not a second
    assert_paid_once(wallet, {address: 4_000_000})
    assert_books_match_node(wallet, "alice")


def test_it_keeps_the_txid_of_a_broadcaster_killed_while_booking_and_settles_it_by_hand(
    btc, node, fresh_node, child_env, closer
):
    wallet, alice = funded_wallet(btc, fresh_node())
    address = node.rpc("getnewaddress")
    send_external(alice, address, 6_000_000)
    kill_when_paused(
        broadcaster_process(child_env, wallet, pause="before_settle_commit"), "before_settle_commit"
    )
    wait_lock_released(wallet)

    killed = Broadcast.objects.get()
    assert (killed.state, len(killed.txid)) == (
        Broadcast.State.OPENED,
        64,
    )  # the booking rolled back, not the txid
    assert OutgoingTransaction.objects.get().state == "broadcasting"
    with pytest.raises(CloseRefused, match="still sending"):
        close_as_broadcasted(killed, killed.txid, closer, "too early")
    end_lease(killed)
    assert find_on_chain(killed) == [killed.txid]

    close_as_broadcasted(killed, killed.txid, closer, "txid recorded before the crash")

    assert Broadcast.objects.get().state == "closed_broadcasted"
    assert_paid_once(wallet, {address: 6_000_000})
    assert_books_match_node(wallet, "alice")


def test_it_leaves_a_refused_send_killed_before_its_commit_for_a_person_and_pays_nothing(
    btc, node, fresh_node, child_env, closer
):
    from tests.support import credit_user

    wallet, alice = funded_wallet(btc, fresh_node(), blocks=101)
    credit_user(wallet, "alice", 100 * 10**8)  # the books promise more than the node holds
    address = node.rpc("getnewaddress")
    send_external(alice, address, 120 * 10**8)
    kill_when_paused(
        broadcaster_process(child_env, wallet, pause="before_fail_commit"), "before_fail_commit"
    )
    wait_lock_released(wallet)

    killed = end_lease(Broadcast.objects.get())
    # Funding was refused, so nothing was signed: the machine's to fail on its next run (not
    # listed for a person), and a person may close it too.
    assert killed.state == Broadcast.State.OPENED and not interrupted_broadcasts().exists()
    close_as_never_left(killed, closer, "insufficient funds: nothing on the node")
    out = OutgoingTransaction.objects.get()
    assert (out.state, out.returned_by_id) == ("queued", killed.pk)
    assert node_sends(wallet) == []


@pytest.fixture
def lost_withdraw(blockio_wallet, blockio, settings):
    """A block.io withdraw whose connection dropped before block.io did anything, lease over."""
    from ledger import imports
    from tests.blockio_server import new_address

    settings.NODE_RPC_TIMEOUT = 1
    blockio.receive(blockio.own_address("house"), "1", confirmations=6)
    alice = ledger.user_account("alice", blockio_wallet.currency)
    imports.import_unaccounted_balance(blockio_wallet.pk, alice.pk)
    destination = new_address()[0]
    send_external(alice, destination, 10_000_000)
    blockio.fail_next("withdraw", "drop")
    Broadcaster(blockio_wallet).run()
    return end_lease(Broadcast.objects.get(state="opened")), destination


def test_it_repeats_a_nonce_retry_killed_before_it_sent_and_pays_once(
    blockio_wallet, blockio, lost_withdraw, child_env
):
    broadcast, destination = lost_withdraw
    kill_when_paused(
        broadcaster_process(child_env, blockio_wallet, pause="after_retry_claim"),
        "after_retry_claim",
    )
    broadcast.refresh_from_db()
    assert broadcast.in_flight and blockio.sent == []  # the retry holds the lease; nothing sent
    end_lease(broadcast)

    Broadcaster(blockio_wallet).run()

    broadcast.refresh_from_db()
    assert broadcast.state == "broadcasted" and [s["txid"] for s in blockio.sent] == [
        broadcast.txid
    ]


def test_it_settles_a_nonce_retry_killed_after_it_sent_by_the_send_it_made(
    blockio_wallet, blockio, lost_withdraw, child_env
):
    broadcast, destination = lost_withdraw
    kill_when_paused(
        broadcaster_process(child_env, blockio_wallet, pause="after_retry_send"), "after_retry_send"
    )
    assert len(blockio.sent) == 1  # the retry paid; its reply died with the process
    end_lease(broadcast)

    Broadcaster(
        blockio_wallet
    ).run()  # repeats again: refused as a used nonce, settled by the send found

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.txid) == ("broadcasted", blockio.sent[0]["txid"])
    assert len(blockio.sent) == 1 and blockio.count("withdraw") == 3
