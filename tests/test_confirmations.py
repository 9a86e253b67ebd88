"""The confirmation tracker against real regtest nodes."""

import threading

import pytest
from django.db import connection

from ledger import services
from ledger.backends.base import TxInfo
from ledger.confirmations.apply import apply
from ledger.confirmations.cycle import poll_wallet
from ledger.confirmations.entry_points import update_confirmations, update_one
from ledger.models import NetworkTransaction, Transaction
from tests.support import make_currency, make_wallet, pay_from_outside, wait_until

BTC = 10**8


@pytest.fixture
def setup(db, two_nodes):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    return wallet, ours, outside


def mine(ours, outside, n=1):
    outside.generate(n)
    height = outside.rpc("getblockcount")
    wait_until(lambda: ours.rpc("getblockcount") == height, what="block relay")


def credits(txid=None):
    qs = Transaction.objects.filter(kind="deposit")
    return list(qs.filter(network_transaction__txid=txid) if txid else qs)


def test_it_credits_a_deposit_once_at_the_threshold_and_closes_it(setup):
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "alice")
    txid = pay_from_outside(ours, outside, address.address, "1.25")
    summary = update_confirmations(wallet.currency)
    # A first cycle: the tip, then one batch for the window (issue 17: the tip comes first so
    # that an idle cycle is that one call alone).
    assert (summary.discovered, summary.credited, summary.round_trips) == (1, 0, 2)
    mine(ours, outside)
    assert update_confirmations(wallet.currency).credited == 0  # 1 confirmation of 2
    mine(ours, outside)
    assert update_confirmations(wallet.currency).credited == 1
    alice = services.user_account("alice", wallet.currency)
    assert services.balance(alice) == 125_000_000
    for _ in range(3):
        mine(ours, outside)
        update_confirmations(wallet.currency)
        update_one(wallet.currency, txid)
    row = NetworkTransaction.objects.get(txid=txid)
    assert row.state == "closed" and row.confirmations >= 4
    assert row.credited_at is not None and row.closed_at is not None
    assert len(credits(txid)) == 1 and services.balance(alice) == 125_000_000


def test_it_credits_each_of_our_addresses_a_transaction_pays(setup):
    wallet, ours, outside = setup
    a = services.new_receiving_address(wallet, "alice")
    b = services.new_receiving_address(wallet, "bob")
    txid = outside.rpc(
        "sendmany", "", {a.address: "0.3", b.address: "0.7", outside.rpc("getnewaddress"): "1"}
    )
    mine(ours, outside, 2)
    summary = update_confirmations(wallet.currency)
    assert summary.credited == 1
    assert {(c.destination.user_id, c.amount) for c in credits(txid)} == {
        ("alice", 30_000_000),
        ("bob", 70_000_000),
    }


@pytest.mark.django_db(transaction=True)
def test_it_never_credits_twice_when_workers_race(two_nodes):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    address = services.new_receiving_address(wallet, "alice")
    txid = pay_from_outside(ours, outside, address.address, "0.5")
    update_confirmations(wallet.currency)
    mine(ours, outside, 2)
    barrier = threading.Barrier(4)
    errors = []

    def worker(kind):
        try:
            barrier.wait()
            for _ in range(5):
                update_confirmations(wallet.currency) if kind == "poll" else update_one(
                    wallet.currency, txid
                )
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(k,)) for k in ("poll", "poll", "notify", "notify")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(credits(txid)) == 1
    assert services.balance(services.user_account("alice", wallet.currency)) == 50_000_000


def test_it_closes_an_outgoing_broadcast_at_the_threshold(setup):
    wallet, ours, outside = setup
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "2", mine=1)
    txid = ours.rpc("sendtoaddress", outside.rpc("getnewaddress"), "0.5")
    wait_until(
        lambda: txid in outside.rpc("getrawmempool"), what="our broadcast to reach the outside node"
    )
    row = NetworkTransaction.objects.create(
        currency=wallet.currency, wallet=wallet, txid=txid, type="broadcast"
    )
    seen = []
    for _ in range(4):
        mine(ours, outside)
        update_confirmations(wallet.currency)
        # Issue 17: an open row's confirmations are derived from its wallet's tip.
        seen.append(
            NetworkTransaction.objects.with_confirmations().get(pk=row.pk).confirmations_now
        )
        row.refresh_from_db()
    assert seen == [1, 2, 3, 4]
    assert row.state == "closed"
    assert not credits()  # a broadcast credits nobody


def test_it_flags_a_credited_deposit_that_a_reorg_takes_back_and_never_credits_twice(setup):
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "carol")
    txid = pay_from_outside(ours, outside, address.address, "0.9")
    mine(ours, outside, 2)
    assert update_confirmations(wallet.currency).credited == 1
    block = ours.rpc("gettransaction", txid)["blockhash"]
    ours.rpc("invalidateblock", block)  # our node's chain loses the block holding the deposit
    assert ours.rpc("gettransaction", txid)["confirmations"] == 0
    update_confirmations(wallet.currency)
    row = NetworkTransaction.objects.get(txid=txid)
    assert row.flagged and "lost confirmations" in row.flag_reason
    assert (row.confirmations, row.max_confirmations, row.state) == (0, 2, "open")
    ours.rpc("reconsiderblock", block)
    wait_until(
        lambda: ours.rpc("gettransaction", txid)["confirmations"] >= 2, what="the block to return"
    )
    update_confirmations(wallet.currency)
    row.refresh_from_db()
    assert row.confirmations >= 2 and row.flagged  # stays flagged for a person to look at
    assert len(credits(txid)) == 1


def test_it_records_a_vanished_transaction_and_flags_it_if_credited(setup):
    wallet, *_ = setup
    gone = NetworkTransaction.objects.create(
        currency=wallet.currency, wallet=wallet, txid="ab" * 32, type="deposit", confirmations=3
    )
    NetworkTransaction.objects.filter(pk=gone.pk).update(credited_at=gone.opened_at)
    summary = update_confirmations(wallet.currency)
    gone.refresh_from_db()
    assert summary.failed == 1
    assert gone.state == "vanished" and gone.state_changed_at is not None and gone.flagged
    assert "Invalid or non-wallet transaction id" in gone.last_error


def test_it_records_a_conflicted_transaction(setup):
    wallet, *_ = setup
    row = NetworkTransaction.objects.create(
        currency=wallet.currency,
        wallet=wallet,
        txid="cd" * 32,
        type="broadcast",
        confirmations=1,
        max_confirmations=1,
    )
    summary = apply(
        [row], {row.txid: TxInfo(txid=row.txid, confirmations=-1, fee=None)}, wallet.currency
    )
    row.refresh_from_db()
    assert summary.changed == 1
    assert (row.state, row.confirmations, row.flagged) == ("conflicted", -1, True)


def test_it_keeps_polling_the_others_when_one_transaction_fails(setup):
    wallet, ours, outside = setup
    NetworkTransaction.objects.create(
        currency=wallet.currency, wallet=wallet, txid="ef" * 32, type="deposit"
    )
    address = services.new_receiving_address(wallet, "dave")
    txid = pay_from_outside(ours, outside, address.address, "0.4")
    mine(ours, outside, 2)
    summary = update_confirmations(wallet.currency)
    assert summary.failed == 1 and summary.credited == 1
    assert len(credits(txid)) == 1


def test_it_asks_the_node_once_however_many_are_open(setup):
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "erin")
    for _ in range(30):
        outside.rpc("sendtoaddress", address.address, "0.01")
    wait_until(lambda: len(ours.rpc("listtransactions", "*", 100)) >= 30, what="deposits to arrive")
    first = poll_wallet(wallet)
    assert first.discovered == 30
    mine(ours, outside)
    wallet.refresh_from_db()
    again = poll_wallet(wallet)
    # Issue 17: the tip, then one batch (window + block checks), however many are open.
    assert again.checked == 30 and again.round_trips == 2


def test_it_writes_changes_in_bulk_on_sqlite_too(tmp_path):
    """The demo runs on SQLite: the same write path there, checked through a fresh connection."""
    import subprocess
    import sys

    from tests.support import REPO

    script = """
import django, os
django.setup()
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", verbosity=0)
from ledger.models import Currency, Wallet, NetworkTransaction as NT
from ledger.confirmations.bulk import write_changes
c = Currency.objects.create(code="BTC"); w = Wallet.objects.create(name="w", currency=c)
rows = [NT.objects.create(currency=c, wallet=w, txid=f"{i:064x}", type="broadcast") for i in
range(3)]
now = timezone.now()
for r in rows:
    r.confirmations, r.state, r.closed_at, r.flagged = 7, "closed", now, True
hand = NT.objects.create(currency=c, wallet=w, txid="f" * 64, type="deposit",
state="closed_by_hand")
hand.confirmations, hand.state = 9, "open"  # a stale copy: the operator closed it after the read
write_changes(rows + [hand], read_states={r.pk: "open" for r in rows + [hand]})
assert NT.objects.filter(pk=hand.pk, state="closed_by_hand", confirmations=0).exists()
got = set(NT.objects.exclude(pk=hand.pk).values_list("confirmations", "state", "flagged"))
assert got == {(7, "closed", True)}, got
assert all(abs((r.closed_at - now).total_seconds()) < 1 for r in NT.objects.exclude(pk=hand.pk))
print("ok")
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "cryptoadmin.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_it_credits_both_wallets_of_one_currency_that_one_transaction_pays(db, fresh_node):
    """A batched payout from another exchange pays an address of each of our two wallets."""
    from django.core.management import call_command

    from ledger.rescan import rescan_wallet

    outside = fresh_node()
    node_a, node_b = fresh_node(peer=outside), fresh_node(peer=outside)
    outside.generate(101)
    wait_until(
        lambda: node_a.rpc("getblockcount") == node_b.rpc("getblockcount") == 101, what="sync"
    )
    currency = make_currency("BTC", crediting_threshold=2, polling_threshold=4)
    wallet_a, wallet_b = (
        make_wallet(currency, node_a, name="a"),
        make_wallet(currency, node_b, name="b"),
    )
    alice = services.new_receiving_address(wallet_a, "alice")
    bob = services.new_receiving_address(wallet_b, "bob")
    txid = outside.rpc(
        "sendmany",
        "",
        {alice.address: "0.3", bob.address: "0.7", outside.rpc("getnewaddress"): "1"},
    )
    wait_until(lambda: all(txid in n.rpc("getrawmempool") for n in (node_a, node_b)), what="relay")
    call_command("walletnotify", "BTC", txid)  # the fast path records it on both wallets
    assert set(
        NetworkTransaction.objects.filter(txid=txid).values_list("wallet__name", flat=True)
    ) == {"a", "b"}
    assert rescan_wallet(wallet_a)["found"] == 0 and rescan_wallet(wallet_b)["found"] == 0
    outside.generate(2)
    wait_until(
        lambda: node_a.rpc("getblockcount") == node_b.rpc("getblockcount") == 103,
        what="block relay",
    )
    assert update_confirmations(currency).credited == 2
    assert {
        (c.network_transaction.wallet.name, c.destination.user_id, c.amount) for c in credits(txid)
    } == {("a", "alice", 30_000_000), ("b", "bob", 70_000_000)}
    for wallet in (wallet_a, wallet_b):  # each wallet's books match its node
        assert services.wallet_books_balance(wallet) == wallet.get_backend().get_balance(0)
