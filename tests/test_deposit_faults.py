"""A poller, walletnotify or rescan process killed (SIGKILL) or failing at each boundary of
the crediting path: the next cycle credits every deposit exactly once, with its amount, and
no deposit is ever closed without its credit."""

import signal
import subprocess

import pytest

from cryptoadmin import faults
from ledger import services
from ledger.confirmations.entry_points import update_confirmations
from ledger.models import NetworkTransaction, Transaction
from tests.support import PYTHON, REPO, make_currency, make_wallet, manage_process

pytestmark = pytest.mark.django_db(transaction=True)

AMOUNTS = {"alice": 31_000_000, "bob": 47_000_000}


@pytest.fixture
def deposits(node):
    """Two deposits to two users of one wallet, both at the polling threshold (credit and close
    in the same cycle), not yet known to the books."""
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), node)
    txids = {}
    for user, units in AMOUNTS.items():
        address = services.new_receiving_address(wallet, user)
        txids[user] = node.rpc("sendtoaddress", address.address, f"{units / 10**8:.8f}")
    node.generate(4)
    return wallet, txids


def run(child_env, fault, *args):
    env = dict(child_env, CRYPTOADMIN_FAULT=fault)
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def assert_credited_once(wallet, txids):
    for user, txid in txids.items():
        entries = Transaction.objects.filter(kind="deposit", network_transaction__txid=txid)
        assert [(e.destination.user_id, e.amount) for e in entries] == [(user, AMOUNTS[user])]
        assert services.balance(services.user_account(user, wallet.currency)) == AMOUNTS[user]
        row = NetworkTransaction.objects.get(wallet=wallet, txid=txid)
        assert row.state == "closed" and row.credited_at is not None


def assert_never_closed_uncredited():
    assert not NetworkTransaction.objects.filter(
        type="deposit", state="closed", credited_at__isnull=True
    ).exists()


@pytest.mark.parametrize(
    "fault",
    [
        "poll.after_listsinceblock=kill",
        "poll.after_record=kill",
        "poll.after_write=kill",
        "credit.before_commit=kill",
        "credit.after_commit=kill",
        "credit.before_commit=2*kill",  # the second deposit of the loop, after the first committed
        "credit.after_commit=2*kill",
        "poll.before_cursor=kill",
    ],
)
def test_it_credits_each_deposit_once_after_the_poller_is_killed(deposits, child_env, fault):
    wallet, txids = deposits
    killed = run(child_env, fault, "update_confirmations", "--currency", "BTC")
    assert killed.returncode == -signal.SIGKILL, (fault, killed.stdout, killed.stderr[-2000:])
    assert_never_closed_uncredited()
    again = run(child_env, "", "update_confirmations", "--currency", "BTC")
    assert again.returncode == 0, again.stderr[-2000:]
    assert_never_closed_uncredited()
    assert_credited_once(wallet, txids)
    update_confirmations(wallet.currency)  # and a third cycle changes nothing
    assert_credited_once(wallet, txids)


def test_it_records_an_error_at_each_point_on_the_wallet_and_credits_on_the_next_cycle(deposits):
    wallet, txids = deposits
    for point in (
        "poll.after_listsinceblock",
        "poll.after_record",
        "poll.after_write",
        "credit.before_commit",
    ):
        with faults.armed({point: "raise"}) as reached:
            summary = update_confirmations(wallet.currency)
            assert reached[point] >= 1, point
        wallet.refresh_from_db()
        assert summary.failed == 1 and "InjectedFault" in wallet.last_poll_error, point
        assert not Transaction.objects.filter(kind="deposit").exists(), point
        assert_never_closed_uncredited()
    summary = update_confirmations(wallet.currency)
    assert summary.credited == 2 and summary.closed == 2
    wallet.refresh_from_db()
    assert wallet.last_poll_error == "" and wallet.last_polled_at is not None
    assert_credited_once(wallet, txids)


@pytest.mark.parametrize(
    "fault", ["notify.after_record=kill", "credit.before_commit=kill", "credit.after_commit=kill"]
)
def test_it_credits_once_after_walletnotify_is_killed(deposits, child_env, fault):
    wallet, txids = deposits
    killed = run(child_env, fault, "walletnotify", "BTC", txids["alice"])
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr[-2000:])
    assert_never_closed_uncredited()
    assert run(child_env, "", "walletnotify", "BTC", txids["alice"]).returncode == 0
    update_confirmations(wallet.currency)
    assert_credited_once(wallet, txids)


def test_it_credits_once_after_a_rescan_is_killed(deposits, child_env):
    wallet, txids = deposits
    killed = run(child_env, "rescan.after_record=kill", "rescan_addresses", "--currency", "BTC")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert set(NetworkTransaction.objects.values_list("txid", flat=True)) == set(txids.values())
    assert run(child_env, "", "rescan_addresses", "--currency", "BTC").returncode == 0
    update_confirmations(wallet.currency)
    assert_credited_once(wallet, txids)


def test_it_leaves_a_deposit_closed_by_hand_alone_in_walletnotify_rescan_and_polls(
    deposits, node, child_env, operator
):
    from ledger.confirmations.closing import close_rows_by_hand
    from ledger.confirmations.entry_points import update_one
    from ledger.rescan import rescan_wallet

    wallet, txids = deposits
    update_one(wallet.currency, txids["alice"])  # recorded and credited by walletnotify
    update_confirmations(wallet.currency)
    # A third deposit, to carol, seen at 0 confirmations, then closed by hand.
    address = services.new_receiving_address(wallet, "carol")
    carol = node.rpc("sendtoaddress", address.address, "0.2")
    update_one(wallet.currency, carol)
    row = NetworkTransaction.objects.get(wallet=wallet, txid=carol)
    close_rows_by_hand([row.pk], operator, "suspected double spend: do not credit")
    node.generate(5)
    assert run(child_env, "", "walletnotify", "BTC", carol).returncode == 0
    rescan_wallet(wallet)
    update_confirmations(wallet.currency)
    row.refresh_from_db()
    assert (row.state, row.credited_at, row.confirmations) == ("closed_by_hand", None, 0)
    assert services.balance(services.user_account("carol", wallet.currency)) == 0
    assert_credited_once(wallet, txids)


@pytest.mark.parametrize("point", ["poll.before_write", "poll.after_write"])
def test_it_never_credits_a_deposit_an_operator_closes_while_the_poller_holds_a_stale_copy(
    deposits, child_env, operator, point
):
    """A real poller process parked after reading the rows (before its write, or before its
    credit); the operator closes one deposit by hand; the poller goes on."""
    from ledger.confirmations.closing import close_rows_by_hand
    from ledger.confirmations.crediting import record_deposits

    wallet, txids = deposits
    record_deposits(wallet, wallet.get_backend().get_transactions(list(txids.values())).values())
    poller = manage_process(
        child_env, "update_confirmations", "--currency", "BTC", fault=f"{point}=pause:3"
    )
    assert poller.stdout.readline().strip() == f"paused {point}"
    row = NetworkTransaction.objects.get(wallet=wallet, txid=txids["bob"])
    close_rows_by_hand([row.pk], operator, "suspected double spend: do not credit")
    row.refresh_from_db()
    as_closed = [
        getattr(row, f)
        for f in ("state", "state_changed_at", "closed_at", "confirmations", "last_checked_at")
    ]
    out, err = poller.communicate(timeout=60)
    assert poller.returncode == 0, err[-2000:]
    assert "credited 1" in out
    row.refresh_from_db()
    assert (row.state, row.credited_at, row.close_reason) == (
        "closed_by_hand",
        None,
        "suspected double spend: do not credit",
    )
    # The poller never wrote on it.
    assert [
        getattr(row, f)
        for f in ("state", "state_changed_at", "closed_at", "confirmations", "last_checked_at")
    ] == as_closed
    assert services.balance(services.user_account("bob", wallet.currency)) == 0
    update_confirmations(wallet.currency)
    assert services.balance(services.user_account("bob", wallet.currency)) == 0
    assert services.balance(services.user_account("alice", wallet.currency)) == AMOUNTS["alice"]
