"""Benchmark: one poll cycle over N open network transactions, the first version vs ours,
on PostgreSQL and a regtest bitcoind started here, each row backed by a real transaction.

    .venv/bin/python bench/confirmations.py [--n 1000 10000]

The first version asked the node once per open transaction (one gettransaction each)
and wrote each in its own database transaction. Ours: one listsinceblock for the whole
window, leftovers batched, changes written in bulk (ledger/confirmations.py).

The node's data directory is kept in bench/.cache/ so later runs skip making transactions.
Last line: `speedup: <ours vs reference at the largest N>x`.
"""
import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptoadmin.localservices import LocalBitcoind, LocalPostgres  # noqa: E402

CACHE = REPO / "bench" / ".cache" / "confirmations-node"


def make_transactions(node, n):
    """n distinct wallet transactions (sends to our own addresses), mined every few hundred."""
    have = node.rpc("getwalletinfo")["txcount"]
    if node.rpc("getblockcount") < 101:
        node.generate(101)
    made, batch = 0, 100
    from bitcoinrpc.authproxy import AuthServiceProxy

    proxy = AuthServiceProxy(node.url, timeout=120)
    addresses = proxy.batch_([["getnewaddress"] for _ in range(200)])
    started = time.perf_counter()
    while have + made < n + 101:
        calls = [["sendtoaddress", addresses[(made + i) % len(addresses)], "0.00100000"] for i in range(batch)]
        proxy.batch_(calls)
        made += batch
        if made % 400 == 0:
            node.generate(1)
    node.generate(1)
    if made:
        print(f"made {made} transactions in {time.perf_counter() - started:.1f} s")


def open_rows(wallet, txids):
    from ledger.models import NetworkTransaction

    NetworkTransaction.objects.all().delete()
    NetworkTransaction.objects.bulk_create([
        NetworkTransaction(currency=wallet.currency, wallet=wallet, txid=t, type="broadcast") for t in txids
    ], batch_size=5000)


def reference_cycle(wallet):
    """What cryptoassets.core did: per open transaction, one node call and one DB transaction."""
    from django.db import transaction
    from django.utils import timezone

    from ledger.models import NetworkTransaction

    backend = wallet.get_backend()
    calls = 0
    for pk, txid in NetworkTransaction.objects.filter(wallet=wallet, state="open").values_list("pk", "txid"):
        info = backend.get_transaction(txid)
        calls += 1
        with transaction.atomic():
            row = NetworkTransaction.objects.select_for_update().get(pk=pk)
            if row.confirmations != info.confirmations:
                row.confirmations = info.confirmations
            row.last_checked_at = timezone.now()
            row.save()
    return calls


def measure(node, wallet, n):
    from ledger.confirmations import poll_wallet
    from ledger.models import NetworkTransaction

    entries = [t for t in node.rpc("listtransactions", "*", 3 * n, 0) if t["category"] == "send"]
    newest = {}
    for t in reversed(entries):  # listtransactions is oldest first: keep the newest n
        newest.setdefault(t["txid"], t["confirmations"])
    txids = list(newest)[:n]
    assert len(txids) == n, f"only {len(txids)} transactions on the node"
    # As a real currency: open means below a threshold just above the oldest open one's
    # confirmations (+3 for the blocks this run mines), so the window holds what is open.
    wallet.currency.polling_threshold = max(newest[t] for t in txids) + 4
    wallet.currency.save()
    wallet.last_block_hash = ""
    wallet.save()
    open_rows(wallet, txids)
    # Warm-up: sets our cursor, as a running tracker has one.
    poll_wallet(wallet)
    node.generate(1)  # every open transaction gains a confirmation: every row changes
    started = time.perf_counter()
    reference_calls = reference_cycle(wallet)
    reference = time.perf_counter() - started

    node.generate(1)
    wallet.refresh_from_db()
    started = time.perf_counter()
    summary = poll_wallet(wallet)
    ours = time.perf_counter() - started
    assert summary.checked == n and summary.changed == n, summary
    confirmations = set(NetworkTransaction.objects.values_list("confirmations", flat=True))
    print(f"N={n:>6}: reference {reference:7.3f} s ({reference_calls} node round trips, {n} DB transactions) | "
          f"ours {ours:6.3f} s ({summary.round_trips} node round trip(s), bulk writes) | "
          f"{reference / ours:5.1f}x | confirmations now {sorted(confirmations)[:3]}")
    return reference / ours


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    pg = LocalPostgres().start()
    node = LocalBitcoind(datadir=str(CACHE)).start()
    try:
        os.environ.update(DATABASE_URL=pg.url, SECRET_KEY="bench-secret-key-" + "x" * 40,
                          DJANGO_SETTINGS_MODULE="cryptoadmin.settings", LOG_LEVEL="WARNING")
        import django

        django.setup()
        from django.core.management import call_command

        from ledger.models import Currency, Wallet

        call_command("migrate", verbosity=0)
        make_transactions(node, max(args.n))
        btc = Currency.objects.create(code="BTC", crediting_threshold=1, polling_threshold=6)
        wallet = Wallet.objects.create(name="bench", currency=btc, backend_settings={"url": node.url})
        speedups = [measure(node, wallet, n) for n in sorted(args.n)]
        print(f"speedup: {speedups[-1]:.1f}x")
    finally:
        node.stop(remove=False)
        pg.stop()


if __name__ == "__main__":
    main()
