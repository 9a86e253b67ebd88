"""One payment per withdrawal by construction: a withdrawal that was ever part of a signed
transaction is paid again only by a transaction spending a coin of every earlier signed
attempt that might still confirm. Each test drives a path that paid twice before the rule,
with real processes, the regtest node and the loopback block.io."""

import subprocess
from datetime import timedelta

import pytest

from broadcasts.broadcaster import Broadcaster
from broadcasts.closing import close_as_broadcasted, close_as_never_left
from broadcasts.models import Broadcast, OutgoingTransaction
from broadcasts.withdrawals import send_external
from cryptoadmin.errors import CloseRefused
from ledger import imports
from ledger import services as ledger
from tests.broadcast_helpers import end_lease
from tests.support import (
    PYTHON,
    REPO,
    expect_paused,
    funded_wallet,
    grant,
    manage_process,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)
WITHDRAWAL = 7_000_000


def sends(server, address) -> list[dict]:
    return [
        e
        for e in server.rpc("listtransactions", "*", 1000)
        if e["category"] == "send" and e["address"] == address and e["confirmations"] >= 0
    ]


def killed_at(child_env, wallet, point):
    proc = subprocess.run(
        [PYTHON, "manage.py", "broadcast", "--wallet", wallet.name],
        cwd=REPO,
        env=dict(child_env, CRYPTOADMIN_FAULT=f"{point}=kill"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, (proc.stdout, proc.stderr[-2000:])


@pytest.fixture(scope="module")
def our_node():
    """A node of this module's own, its coins matured once: each test's wallet takes in the
    whole balance it has then (nothing mines on it during a test), its coins unlocked."""
    from devtools.localservices import LocalBitcoind

    server = LocalBitcoind().start()
    server.generate(120)
    yield server
    server.stop()


@pytest.fixture
def server(our_node):
    our_node.rpc("lockunspent", True)
    return our_node


@pytest.fixture
def queued(btc, node, server):
    wallet, alice = funded_wallet(btc, server, blocks=0)
    address = node.rpc("getnewaddress")
    send_external(alice, address, WITHDRAWAL)
    return server, wallet, address


def test_it_pays_once_when_a_signed_attempt_closed_as_never_left_arrives_after_a_failed_retry(
    queued, child_env, operator
):
    from tests.invariants import books_equal_node

    server, wallet, address = queued
    killed_at(child_env, wallet, "broadcast.after_sign_commit")
    first = end_lease(Broadcast.objects.get())
    close_as_never_left(first, grant(operator, "broadcasts.close_broadcast_by_hand"), "not seen")
    # The next attempt collects the withdrawal and fails while building: the node goes down.
    proc = subprocess.Popen(
        [PYTHON, "manage.py", "broadcast", "--wallet", wallet.name],
        cwd=REPO,
        env=dict(child_env, CRYPTOADMIN_FAULT="broadcast.after_collect=pause:4"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    expect_paused(proc, "broadcast.after_collect")
    server.stop(remove=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    server.start()
    assert not Broadcast.objects.exclude(pk=first.pk).exclude(state="failed").exists()
    # Then the first attempt's signed bytes reach the node after all (a copy relayed late).
    assert server.rpc("sendrawtransaction", first.raw_tx) == first.txid

    Broadcaster(wallet).run()
    Broadcaster(wallet).run()

    assert [e["txid"] for e in sends(server, address)] == [first.txid]
    assert OutgoingTransaction.objects.get().state == "broadcasted"
    assert books_equal_node(wallet) == []


# -- block.io: a withdrawal to one of our own addresses -----------------------------------------


@pytest.fixture
def lost_to_our_address(blockio_wallet, blockio, settings):
    """alice withdraws to bob's deposit address (one of ours); block.io sends it, but its
    reply never arrives."""
    settings.NODE_RPC_TIMEOUT = 1
    blockio.receive(blockio.own_address("house"), "1", confirmations=6)
    alice = ledger.user_account("alice", blockio_wallet.currency)
    imports.import_unaccounted_balance(blockio_wallet.pk, alice.pk)
    bob = ledger.new_receiving_address(blockio_wallet, "bob").address
    send_external(alice, bob, 10_000_000)
    blockio.fail_next("withdraw", "timeout")
    Broadcaster(blockio_wallet).run()
    broadcast = Broadcast.objects.get()
    txid = wait_until(lambda: blockio.nonces.get(broadcast.nonce), what="the slow withdraw")
    return end_lease(broadcast), txid


def test_it_settles_a_lost_block_io_withdrawal_to_our_own_address_by_its_nonce(
    blockio_wallet, blockio, lost_to_our_address
):
    broadcast, txid = lost_to_our_address

    Broadcaster(blockio_wallet).run()  # the nonce repeated: refused, the send is found

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.txid) == ("broadcasted", txid)
    assert Broadcaster(blockio_wallet).run().sent == 0 and len(blockio.sent) == 1


def test_it_refuses_never_left_for_a_block_io_withdrawal_to_our_own_address_that_left(
    blockio_wallet, blockio, lost_to_our_address, operator
):
    broadcast, txid = lost_to_our_address
    Broadcast.objects.filter(pk=broadcast.pk).update(
        opened_at=broadcast.opened_at - timedelta(hours=1)
    )
    blockio.clock = lambda: __import__("time").time() + 3600  # past the nonce window
    closer = grant(operator, "broadcasts.close_broadcast_by_hand")

    with pytest.raises(CloseRefused, match="it left"):
        close_as_never_left(broadcast, closer, "nothing in block.io's list")
    close_as_broadcasted(broadcast, txid, closer, "found in block.io's sent list")

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.txid) == ("closed_broadcasted", txid)
    assert Broadcaster(blockio_wallet).run().sent == 0 and len(blockio.sent) == 1


# -- SQLite: two broadcasters and no advisory lock ----------------------------------------------


def test_it_never_fails_a_broadcast_whose_sender_signed_it_while_a_later_run_looked(
    tmp_path, server
):
    import sqlite3

    from tests.support import manage, run_python, sqlite_child_env

    db = tmp_path / "db.sqlite3"
    env = sqlite_child_env(db)
    address = server.rpc("getnewaddress")
    setup = ("-m", "tests.broadcast_sqlite_child", "setup", server.url, address, "5000000")
    assert run_python(env, *setup).returncode == 0
    go_first, go_later = tmp_path / "first", tmp_path / "later"
    # The first run opens the broadcast and stalls before signing it ...
    first = manage_process(
        env,
        "broadcast",
        "--wallet",
        "sqlite-btc",
        fault=f"broadcast.after_open=wait:{go_first};broadcast.after_raw_send=kill",
    )
    expect_paused(first, "broadcast.after_open")
    # ... a later run reads it unsigned and stalls before deciding; meanwhile the first
    # signs, records and sends it (and dies before booking it), and its lease ends.
    later = manage_process(
        env,
        "broadcast",
        "--wallet",
        "sqlite-btc",
        fault=f"broadcast.before_fail_unsigned=wait:{go_later}",
    )
    expect_paused(later, "broadcast.before_fail_unsigned")
    go_first.touch()
    first.communicate(timeout=60)
    assert first.returncode == -9
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE broadcasts_broadcast SET sending_until = '2000-01-01 00:00:00'")
    go_later.touch()
    out, err = later.communicate(timeout=60)
    assert later.returncode == 0, err

    manage(env, "broadcast", "--wallet", "sqlite-btc")  # the next run settles what is left

    paid = [
        e
        for e in server.rpc("listtransactions", "*", 100)
        if e["category"] == "send" and e["address"] == address and e["confirmations"] >= 0
    ]
    assert len(paid) == 1, out


# -- the rule itself ------------------------------------------------------------------------------


@pytest.fixture
def signed_then_never_left(queued, operator):
    """A signed attempt recorded, its run stopped before sending, closed as never left."""
    from cryptoadmin import faults

    server, wallet, address = queued
    with faults.armed({"broadcast.after_sign_commit": "raise"}):
        with pytest.raises(faults.InjectedFault):
            Broadcaster(wallet).run()
    first = end_lease(Broadcast.objects.get())
    close_as_never_left(first, grant(operator, "broadcasts.close_broadcast_by_hand"), "not seen")
    return server, wallet, address, first


def test_it_pays_a_withdrawal_again_only_with_a_coin_of_its_earlier_signed_attempt(
    signed_then_never_left,
):
    from tests.invariants import books_equal_node, signed_attempts_conflict

    server, wallet, address, first = signed_then_never_left

    assert Broadcaster(wallet).run().sent == 1

    second = Broadcast.objects.exclude(pk=first.pk).get()
    assert second.state == "broadcasted" and set(first.inputs) & set(second.inputs)
    with pytest.raises(Exception, match="-26|-25"):  # the late copy can never confirm now
        server.rpc("sendrawtransaction", first.raw_tx)
    assert signed_attempts_conflict(wallet) == [] and books_equal_node(wallet) == []


def test_it_settles_as_the_earlier_attempt_when_the_node_holds_it(signed_then_never_left):
    server, wallet, address, first = signed_then_never_left
    # A copy reached the node long after the close: past what the watch looks at.
    Broadcast.objects.filter(pk=first.pk).update(closed_at=first.closed_at - timedelta(days=2))
    server.rpc("sendrawtransaction", first.raw_tx)

    result = Broadcaster(wallet).run()

    first.refresh_from_db()
    second = Broadcast.objects.exclude(pk=first.pk).get()
    assert result.sent == 1 and (first.state, second.state) == ("broadcasted", "failed")
    assert not second.raw_tx and f"earlier attempt #{first.pk}" in second.last_error
    assert [e["txid"] for e in sends(server, address)] == [first.txid]
    assert OutgoingTransaction.objects.get().broadcast == first


def test_it_settles_as_the_earlier_attempt_when_the_node_refuses_the_retry_as_conflicting(
    signed_then_never_left,
):
    from cryptoadmin import faults

    server, wallet, address, first = signed_then_never_left
    Broadcast.objects.filter(pk=first.pk).update(closed_at=first.closed_at - timedelta(days=2))
    with faults.armed({"broadcast.after_sign_commit": "raise"}):
        with pytest.raises(faults.InjectedFault):
            Broadcaster(wallet).run()  # the retry is signed and recorded, not sent yet ...
    server.rpc("sendrawtransaction", first.raw_tx)  # ... when the first one reaches the node

    Broadcaster(wallet).run()  # the retry is refused as conflicting: the first one pays

    first.refresh_from_db()
    second = Broadcast.objects.exclude(pk=first.pk).get()
    assert (first.state, second.state) == ("broadcasted", "failed") and second.raw_tx
    assert [e["txid"] for e in sends(server, address)] == [first.txid]
    assert OutgoingTransaction.objects.get().state == "broadcasted"


# -- found reading the code ----------------------------------------------------------------------


def test_it_closes_a_signed_attempt_by_another_txid_only_if_it_spends_one_of_its_coins(
    btc, node, server, operator
):
    """Paid by hand with one of its coins: accepted, and its other coin is free again; paid by
    hand with other coins: refused (the signed one could still confirm and pay again)."""
    from cryptoadmin import faults

    wallet, alice = funded_wallet(btc, server, blocks=0)
    address = node.rpc("getnewaddress")
    send_external(alice, address, 60 * 10**8)  # more than one coin of 50
    with faults.armed({"broadcast.after_sign_commit": "raise"}):
        with pytest.raises(faults.InjectedFault):
            Broadcaster(wallet).run()
    signed = end_lease(Broadcast.objects.get())
    assert len(signed.inputs) == 2
    closer = grant(operator, "broadcasts.close_broadcast_by_hand")

    def by_hand(coins):
        raw = server.rpc("createrawtransaction", coins, {address: "60"})
        funded = server.rpc("fundrawtransaction", raw, {"lockUnspents": False})["hex"]
        return server.rpc("sendrawtransaction", server.rpc("signrawtransaction", funded)["hex"])

    elsewhere = by_hand([])
    with pytest.raises(CloseRefused, match="spends none of the coins"):
        close_as_broadcasted(signed, elsewhere, closer, "paid by hand")
    txid, vout = signed.inputs[0].split(":")
    ours = by_hand([{"txid": txid, "vout": int(vout)}])

    close_as_broadcasted(signed, ours, closer, "paid by hand with its coin")

    assert server.rpc("listlockunspent") == [], (signed.inputs, ours)  # its other coin is free
    signed.refresh_from_db()
    assert (signed.state, signed.txid) == ("closed_broadcasted", ours)


def test_it_never_gives_back_a_withdrawal_whose_signed_attempt_may_still_confirm(
    signed_then_never_left, operator
):
    from broadcasts.approvals import cancel
    from broadcasts.errors import DecisionError

    server, wallet, address, first = signed_then_never_left
    person = grant(operator, "broadcasts.cancel_outgoingtransaction")
    waiting = OutgoingTransaction.objects.get()
    assert waiting.state == "queued"

    with pytest.raises(DecisionError, match="may still confirm"):
        cancel(waiting, person, "the user asked")

    assert OutgoingTransaction.objects.get().state == "queued"
    assert Broadcaster(wallet).run().sent == 1  # paid once, by a transaction conflicting with it


def test_it_says_on_every_admin_page_that_a_sent_broadcast_lost(db_wallet, rf):
    from django.utils import timezone

    from broadcasts.dashboard import alerts

    lost = Broadcast.objects.create(
        wallet=db_wallet,
        state="broadcasted",
        txid="ab" * 32,
        opened_at=timezone.now(),
        needs_attention=True,
        reversed_at=timezone.now(),
        last_error="LOST: ...",
    )

    (banner,) = alerts(rf.get("/admin/"))

    assert "1 sent broadcast lost to another transaction" in banner["message"]
    assert "booking was reversed" in banner["message"] and banner["level"] == "error"
    Broadcast.objects.filter(pk=lost.pk).update(reversed_at=None)  # a late reply instead
    assert "after a close by hand" in alerts(rf.get("/admin/"))[0]["message"]


def test_it_books_a_withdrawal_of_an_earlier_attempt_settled_while_it_was_collected_elsewhere(
    queued, node, operator
):
    from cryptoadmin import faults
    from tests.invariants import books_equal_node

    server, wallet, address = queued
    (one,) = OutgoingTransaction.objects.all()
    two = send_external(one.account, node.rpc("getnewaddress"), WITHDRAWAL)
    with faults.armed({"broadcast.after_sign_commit": "raise"}):
        with pytest.raises(faults.InjectedFault):
            Broadcaster(wallet).run()
    first = end_lease(Broadcast.objects.get())
    close_as_never_left(first, grant(operator, "broadcasts.close_broadcast_by_hand"), "not seen")
    other = Broadcaster(wallet).collect([one.pk])  # another run's, not opened yet
    server.rpc("sendrawtransaction", first.raw_tx)  # the first reaches the node after all ...
    Broadcaster(wallet).run()  # ... it pays both: the one waiting is booked, then the other

    other.refresh_from_db()
    assert other.state == "failed" and not other.raw_tx
    paid = OutgoingTransaction.objects.filter(pk__in=[one.pk, two.pk], state="broadcasted")
    assert set(paid.values_list("broadcast_id", flat=True)) == {first.pk} and paid.count() == 2
    assert [e["txid"] for e in sends(server, address)] == [first.txid]
    assert books_equal_node(wallet) == []
