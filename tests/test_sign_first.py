"""Sign first, send after (bitcoind): a broadcast's signed transaction, txid and fee are
committed before it is sent, so the machine settles a lost send itself. Real processes
SIGKILLed at the points between the steps, the real node stopped mid-send, and a conflicting
spend made on the node; each ends with one payment per outgoing and the books equal to the node."""

import subprocess
import time
from decimal import Decimal

import pytest

from broadcasts.broadcaster import Broadcaster
from broadcasts.chain import find_on_chain
from broadcasts.closing import close_as_broadcasted
from broadcasts.models import Broadcast, OutgoingTransaction, WithdrawalRule
from broadcasts.selections import interrupted_broadcasts
from broadcasts.withdrawals import send_external
from ledger.backends import bitcoind as bitcoind_backend
from tests.support import PYTHON, REPO, funded_wallet, grant

pytestmark = pytest.mark.django_db(transaction=True)


def run_killed_at(child_env, wallet, point):
    """A broadcaster process SIGKILLed at `point`; returns when it is dead."""
    env = dict(child_env, CRYPTOADMIN_FAULT=f"{point}=kill")
    proc = subprocess.run(
        [PYTHON, "manage.py", "broadcast", "--wallet", wallet.name],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, (proc.stdout, proc.stderr[-2000:])


def wait_unlocked(wallet):
    from broadcasts.lease import busy_wallet_ids

    deadline = time.monotonic() + 10
    while wallet.pk in busy_wallet_ids():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def sends(server) -> list[dict]:
    return [e for e in server.rpc("listtransactions", "*", 1000) if e["category"] == "send"]


def assert_one_payment_each(wallet, server, expected: dict):
    """Every outgoing paid exactly once on chain (not conflicted), books equal to the node."""
    from tests.invariants import books_equal_node, outgoing_paid_at_most_once

    paid = [e for e in sends(server) if e["address"] in expected and e["confirmations"] >= 0]
    assert sorted(e["address"] for e in paid) == sorted(expected)
    entries = server.rpc("listtransactions", "*", 1000)
    assert outgoing_paid_at_most_once(wallet, entries) == []
    assert books_equal_node(wallet) == []
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {"broadcasted"}


@pytest.fixture
def setup(btc, node, fresh_node):
    server = fresh_node()
    wallet, alice = funded_wallet(btc, server)
    address = node.rpc("getnewaddress")
    send_external(alice, address, 7_000_000)
    return server, wallet, alice, address


def test_it_commits_the_signed_transaction_before_sending_and_sends_it_after_a_kill(
    setup, child_env
):
    server, wallet, alice, address = setup
    run_killed_at(child_env, wallet, "broadcast.after_sign_commit")
    wait_unlocked(wallet)

    killed = Broadcast.objects.get()
    assert (killed.state, killed.signed_first, len(killed.txid)) == ("opened", True, 64)
    assert killed.signed_fee > 0 and killed.inputs and killed.raw_tx
    decoded = server.rpc("decoderawtransaction", killed.raw_tx)
    assert decoded["txid"] == killed.txid
    with pytest.raises(Exception, match="-5"):
        server.rpc("getmempoolentry", killed.txid)  # nothing went to the node
    assert {f"{c['txid']}:{c['vout']}" for c in server.rpc("listlockunspent")} == set(killed.inputs)
    assert not interrupted_broadcasts().exists()  # the machine's to settle, not a person's

    result = Broadcaster(wallet).run()  # its lease still runs: re-sending the same bytes is safe

    killed.refresh_from_db()
    assert result.sent == 1 and killed.state == "broadcasted" and killed.closed_by is None
    assert killed.recovered_at is not None  # settled by a later run, by itself
    assert (
        killed.fee == killed.signed_fee == -server.rpc("gettransaction", killed.txid)["fee"] * 10**8
    )
    assert_one_payment_each(wallet, server, {address: 7_000_000})


def test_it_settles_a_broadcaster_killed_after_sending_without_a_person(setup, child_env):
    server, wallet, alice, address = setup
    run_killed_at(child_env, wallet, "broadcast.after_raw_send")
    wait_unlocked(wallet)
    killed = Broadcast.objects.get()
    assert killed.state == "opened" and server.rpc("getmempoolentry", killed.txid)

    assert Broadcaster(wallet).run().sent == 1

    killed.refresh_from_db()
    assert (killed.state, killed.closed_by) == ("broadcasted", None)
    assert_one_payment_each(wallet, server, {address: 7_000_000})
    server.generate(1)
    assert Broadcaster(wallet).run().sent == 0  # nothing sent twice, even once mined


def test_it_fails_a_broadcast_killed_before_signing_once_its_lease_is_over(setup, child_env):
    from tests.broadcast_helpers import end_lease

    server, wallet, alice, address = setup
    run_killed_at(child_env, wallet, "broadcast.after_open")
    wait_unlocked(wallet)
    killed = Broadcast.objects.get()
    assert killed.state == "opened" and not killed.raw_tx
    assert "still sending" in Broadcaster(wallet).run().message  # its lease still runs
    end_lease(killed)

    result = Broadcaster(wallet).run()

    killed.refresh_from_db()
    assert killed.state == "failed" and result.sent == 1  # failed, then sent as a new one
    assert_one_payment_each(wallet, server, {address: 7_000_000})


def test_it_leaves_no_coin_locked_when_killed_between_signing_and_recording(setup, child_env):
    """Signed, not recorded: nothing can have been sent, and no coin stays locked for a
    transaction nobody will ever send (coins are locked only once the signed transaction is
    recorded with them; a lock taken while funding would outlive the process until the node
    restarts, and later broadcasts would be refused for want of those coins)."""
    from tests.broadcast_helpers import end_lease

    server, wallet, alice, address = setup
    run_killed_at(child_env, wallet, "broadcast.after_sign")
    wait_unlocked(wallet)
    killed = Broadcast.objects.get()
    assert killed.state == "opened" and not killed.raw_tx
    assert server.rpc("listlockunspent") == []
    end_lease(killed)

    result = Broadcaster(wallet).run()

    killed.refresh_from_db()
    assert killed.state == "failed" and result.sent == 1  # failed, then sent as a new one
    assert_one_payment_each(wallet, server, {address: 7_000_000})


def test_it_settles_a_send_the_node_stopped_during_once_it_is_back(setup, child_env):
    server, wallet, alice, address = setup
    env = dict(child_env, CRYPTOADMIN_FAULT="broadcast.after_sign_commit=pause:4")
    proc = subprocess.Popen(
        [PYTHON, "manage.py", "broadcast", "--wallet", wallet.name],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "paused broadcast.after_sign_commit"
    server.stop(remove=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "sends the same transaction again" in out

    signed = Broadcast.objects.get()
    assert signed.state == "opened" and signed.raw_tx and not interrupted_broadcasts().exists()
    down = Broadcaster(wallet).run()
    assert down.sent == 0 and not down.refused
    server.start()
    assert server.rpc("listlockunspent") == []  # the restart dropped the coins' locks

    assert Broadcaster(wallet).run().sent == 1

    signed.refresh_from_db()
    assert (signed.state, signed.closed_by) == ("broadcasted", None)
    assert_one_payment_each(wallet, server, {address: 7_000_000})


def test_it_leaves_a_broadcast_whose_inputs_were_spent_elsewhere_to_a_person(
    setup, child_env, operator
):
    server, wallet, alice, address = setup
    run_killed_at(child_env, wallet, "broadcast.after_sign_commit")
    wait_unlocked(wallet)
    signed = Broadcast.objects.get()
    # Someone pays the same withdrawal on the node by hand, spending the same coin.
    txid, vout = signed.inputs[0].split(":")
    coin = server.rpc("gettxout", txid, int(vout))
    change = coin["value"] - Decimal("0.07") - Decimal("0.0001")  # 0.0001 in fee
    raw = server.rpc(
        "createrawtransaction",
        [{"txid": txid, "vout": int(vout)}],
        {address: "0.07", server.rpc("getrawchangeaddress"): str(change)},
    )
    conflict = server.rpc("sendrawtransaction", server.rpc("signrawtransaction", raw)["hex"])

    result = Broadcaster(wallet).run()

    signed.refresh_from_db()
    assert result.refused and result.sent == 0
    assert signed.state == "opened" and conflict in signed.stuck_reason
    assert "spent by transaction" in signed.last_error
    assert list(interrupted_broadcasts()) == [signed]
    assert find_on_chain(signed) == []  # the stored txid is not on the node; no comment either
    closer = grant(operator, "broadcasts.close_broadcast_by_hand")

    close_as_broadcasted(signed, conflict, closer, "paid by hand on the node with the same coin")

    signed.refresh_from_db()
    assert (signed.state, signed.txid, signed.closed_by) == ("closed_broadcasted", conflict, closer)
    assert_one_payment_each(wallet, server, {address: 7_000_000})


def test_it_holds_outgoing_whose_fee_would_pass_the_cap_with_the_figures(setup, btc):
    server, wallet, alice, address = setup
    WithdrawalRule.objects.create(currency=btc, fee_rate=100_000, max_fee=5_000)

    result = Broadcaster(wallet).run()

    broadcast = Broadcast.objects.get()
    out = OutgoingTransaction.objects.get()
    assert result.sent == 0 and broadcast.state == "failed" and not broadcast.raw_tx
    assert out.state == "needs_attention" and out.broadcast is None
    assert (
        "would pay 0.00019200 BTC in fee, above the BTC cap of 0.00005000 BTC" in out.last_error
    ), out.last_error
    assert "would pay 0.000" in out.last_error
    assert server.rpc("listlockunspent") == [] and sends(server) == []


def test_it_pays_the_currency_fee_rate_and_signs_with_the_name_the_node_knows(setup, btc):
    server, wallet, alice, address = setup
    WithdrawalRule.objects.create(currency=btc, fee_rate=5_000, max_fee=10**6)
    bitcoind_backend._SIGN_METHOD.clear()

    assert Broadcaster(wallet).run().sent == 1

    broadcast = Broadcast.objects.get()
    size = len(broadcast.raw_tx) // 2
    assert 5 * size - 5 <= broadcast.fee <= 5 * size + 5 * 40
    # This node has no signrawtransactionwithwallet (-32601): learnt from its answer, once.
    assert bitcoind_backend._SIGN_METHOD[wallet.backend_settings["url"]] == "signrawtransaction"
    assert_one_payment_each(wallet, server, {address: 7_000_000})


def test_it_shows_the_signed_transaction_on_the_close_page_and_finds_it_by_txid_first(
    setup, client, operator
):
    from django.urls import reverse

    from cryptoadmin import faults
    from tests.broadcast_helpers import end_lease

    server, wallet, alice, address = setup
    with faults.armed({"broadcast.after_sign_commit": "raise"}):
        with pytest.raises(faults.InjectedFault):
            Broadcaster(wallet).run()
    signed = Broadcast.objects.get()
    server.rpc("sendrawtransaction", signed.raw_tx)  # it did leave, without a comment
    Broadcast.objects.filter(pk=signed.pk).update(stuck_reason="for the page")
    end_lease(signed)
    grant(operator, "broadcasts.view_broadcast", "broadcasts.close_broadcast_by_hand")
    client.force_login(operator)
    close = reverse("admin:broadcasts_broadcast_close", args=[signed.pk])

    page = client.get(close).content.decode()

    assert signed.txid in page and "0.07000000" in page and "an expected output" in page
    assert address in page and "not an expected output: the change" in page
    found = client.post(reverse("admin:broadcasts_broadcast_find", args=[signed.pk]))
    assert found.url == f"{close}?txid={signed.txid}"
    assert server.rpc("listtransactions", "*", 10)[-1].get("comment") is None


def test_it_takes_back_a_signed_broadcast_closed_as_never_left_that_the_node_sends_later(
    setup, child_env, operator
):
    from broadcasts.closing import close_as_never_left
    from tests.broadcast_helpers import end_lease

    server, wallet, alice, address = setup
    run_killed_at(child_env, wallet, "broadcast.after_sign_commit")
    wait_unlocked(wallet)
    signed = Broadcast.objects.get()
    end_lease(signed)
    closer = grant(operator, "broadcasts.close_broadcast_by_hand")
    # Nothing on the node carries it yet: a person closes it as never left, which puts its
    # withdrawal back in the queue and frees its coins ...
    close_as_never_left(signed, closer, "not on the node")
    assert OutgoingTransaction.objects.get().state == OutgoingTransaction.State.QUEUED
    # ... and then its signed bytes reach the node after all (a copy relayed late).
    assert server.rpc("sendrawtransaction", signed.raw_tx) == signed.txid

    Broadcaster(wallet).run()

    signed.refresh_from_db()
    assert signed.needs_attention and "LATE REPLY" in signed.last_error
    assert Broadcast.objects.count() == 1  # the withdrawal was taken back, not sent again
    # Booked as sent with the fee it signed for, at once: the books equal the node already.
    assert signed.fee == signed.signed_fee
    assert_one_payment_each(wallet, server, {address: 7_000_000})
    Broadcaster(wallet).run()  # flagged once: the next run finds nothing new
    assert Broadcast.objects.count() == 1 and len(sends(server)) == 1
    # Marked by a field, not found by its message: had nothing been taken back (the broadcast
    # still closed as never left), the watch would leave it alone whatever its text says.
    Broadcast.objects.filter(pk=signed.pk).update(
        state=Broadcast.State.CLOSED_FAILED, last_error="acknowledged, checked by hand"
    )
    from broadcasts.watch import watch_signed_never_left

    assert Broadcast.objects.get(pk=signed.pk).late_reply_at is not None
    assert watch_signed_never_left(wallet, wallet.get_backend()) == 0
