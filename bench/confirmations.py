"""Benchmark: confirmation tracking, a naive poller (the reference) vs ours, on PostgreSQL and
a regtest bitcoind started here, each open row backed by a real wallet transaction.

    .venv/bin/python bench/confirmations.py [--n 1000 10000 100000] [--notifications 20]
    .venv/bin/python bench/confirmations.py --quick   (N=100, a node of its own, seconds)

The reference, a naive poller, asks the node once per open transaction (one gettransaction each) and
writes each in its own database transaction. Ours (ledger/confirmations/): the tip, and
when it moved one batch (window since the last tip + block checks), then a constant number
of SQL statements. Measured in the same run, for each N (the reference only up to 10,000):
the reference cycle and ours after one new block, ours with no new block (median of 5).
Then the node listener (manage.py listen_node, a child process on the node's ZMQ feed): its
CPU per notification (deposits, then blocks) and how long a deposit takes to be recorded,
against one `manage.py walletnotify` process.

The node's data directory is kept in bench/.cache/ (the transactions are made once, about
2,000 per round: one fan-out to our addresses, then one raw transaction spending each);
`--node-dir DIR` keeps another one (another wallet size: the idle cycle at 100,000 and at
1,000,000 wallet transactions). The first line gives the wallet's size and what the idle
cycle's node call costs there (listtransactions' newest entries) beside getwalletinfo (what it
called before, whose cost grows with the wallet's history).
Lines `idle_speedup: ...x` and, last, `speedup: <reference / ours at 10,000 after one new block>x`.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.confirmations_listener import notifications, tip_calls  # noqa: E402
from devtools.localservices import LocalBitcoind, LocalPostgres  # noqa: E402

CACHE = REPO / "bench" / ".cache"
NODE_DIR = CACHE / "confirmations-node"
TXIDS = CACHE / "confirmations-txids.json"
OUTSIDE = (
    "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"  # not the wallet's: each spend is one wallet transaction
)


# Wallet transactions made per round, and how many beyond N the node must have; --quick
# makes fewer on a node of its own.
ROUND, SPARE = 2000, 1000
SETTLE = 3  # seconds for the listener's start-up cycle before its CPU is counted
FIGURES = ("idle_speedup", "speedup")


def make_transactions(node, n):
    """At least n wallet transactions paying OUTSIDE, ROUND per round: a fan-out to our own
    addresses, mined, then one raw transaction spending each output (no coin selection over a
    growing wallet: sendtoaddress is quadratic here)."""
    from bitcoinrpc.authproxy import AuthServiceProxy

    rpc = AuthServiceProxy(node.url, timeout=600)
    if rpc.getblockcount() < 101:
        node.generate(101)
    have = rpc.getwalletinfo()["txcount"]
    if have >= n + SPARE:
        return
    addresses = rpc.batch_([["getnewaddress"] for _ in range(ROUND)])
    started = time.perf_counter()
    while rpc.getwalletinfo()["txcount"] < n + SPARE:
        coins = [u for u in rpc.listunspent(1) if u["amount"] >= Decimal("3")]
        if not coins:
            node.generate(101)
            continue
        coin = coins[0]
        outputs = {a: "0.00100000" for a in addresses}
        outputs[rpc.getnewaddress()] = str(
            coin["amount"] - Decimal("0.001") * ROUND - Decimal("0.01")
        )
        signed = rpc.signrawtransaction(
            rpc.createrawtransaction([{"txid": coin["txid"], "vout": coin["vout"]}], outputs)
        )["hex"]
        fan = rpc.sendrawtransaction(signed)
        node.generate(1)
        vouts = [
            o["n"]
            for o in rpc.decoderawtransaction(signed)["vout"]
            if o["value"] == Decimal("0.001")
        ]
        for start in range(0, len(vouts), 500):
            raws = rpc.batch_(
                [
                    ["createrawtransaction", [{"txid": fan, "vout": v}], {OUTSIDE: "0.00099000"}]
                    for v in vouts[start : start + 500]
                ]
            )
            signed_all = rpc.batch_([["signrawtransaction", r] for r in raws])
            rpc.batch_([["sendrawtransaction", s["hex"]] for s in signed_all])
        node.generate(1)
    TXIDS.unlink(missing_ok=True)
    print(
        f"made transactions up to {rpc.getwalletinfo()['txcount']} in "
        f"{time.perf_counter() - started:.0f} s"
    )


def newest_txids(node, n):
    """The newest n transactions paying OUTSIDE (cached: listing 300,000 wallet entries takes a
    while)."""
    if TXIDS.exists():
        cached = json.loads(TXIDS.read_text())
        if len(cached) >= n:
            return cached[:n]
    from bitcoinrpc.authproxy import AuthServiceProxy

    rpc = AuthServiceProxy(node.url, timeout=600)
    found, seen, skip, page = [], set(), 0, 20000
    while len(found) < n:
        entries = rpc.listtransactions("*", page, skip)
        for e in reversed(entries):  # each page is oldest first
            if (
                e.get("category") == "send"
                and e.get("address") == OUTSIDE
                and e["txid"] not in seen
            ):
                seen.add(e["txid"])
                found.append(e["txid"])
        if len(entries) < page:
            break
        skip += page
    TXIDS.write_text(json.dumps(found))
    return found[:n]


def open_rows(wallet, txids):
    from ledger.models import NetworkTransaction

    NetworkTransaction.objects.all().delete()
    NetworkTransaction.objects.bulk_create(
        [
            NetworkTransaction(currency=wallet.currency, wallet=wallet, txid=t, type="broadcast")
            for t in txids
        ],
        batch_size=5000,
    )


def reference_cycle(wallet):
    """What cryptoassets.core did: per open transaction, one node call and one DB transaction."""
    from django.db import transaction
    from django.utils import timezone

    from ledger.models import NetworkTransaction

    backend = wallet.get_backend()
    calls = statements = 0
    for pk, txid in NetworkTransaction.objects.filter(wallet=wallet, state="open").values_list(
        "pk", "txid"
    ):
        info = backend.get_transaction(txid)
        calls += 1
        with transaction.atomic():
            row = NetworkTransaction.objects.select_for_update().get(pk=pk)
            if row.confirmations != info.confirmations:
                row.confirmations = info.confirmations
            row.last_checked_at = timezone.now()
            row.save()
        statements += 4  # BEGIN, SELECT ... FOR UPDATE, UPDATE, COMMIT
    return calls, statements + 1


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def check(node, wallet, txids):
    """Ours agrees with the node on a sample of rows."""
    from ledger.models import NetworkTransaction

    sample = txids[:: max(1, len(txids) // 50)]
    ours = {
        r.txid: r.confirmations_now
        for r in NetworkTransaction.objects.with_confirmations().filter(txid__in=sample)
    }
    theirs = {t: node.rpc("gettransaction", t)["confirmations"] for t in sample}
    assert ours == theirs, [
        (t, ours.get(t), theirs[t]) for t in sample if ours.get(t) != theirs[t]
    ][:5]


def measure(node, wallet, n, with_reference):
    from ledger.confirmations.cycle import poll_wallet
    from ledger.models import Wallet

    txids = newest_txids(node, n)
    if len(txids) < n:
        print(f"N={n}: only {len(txids)} transactions on the node: skipped")
        return None
    deepest = max(node.rpc("gettransaction", t)["confirmations"] for t in txids[-20:])
    # As a real currency: open means below a threshold just above the oldest open one's
    # confirmations (+ the blocks this run mines), so every row stays open.
    wallet.currency.polling_threshold = deepest + 40
    wallet.currency.save()
    open_rows(wallet, txids)
    # A running tracker's state: the cursor at the tip, every row placed in its block (this
    # first cycle asks them all by txid, as after the migration).
    Wallet.objects.filter(pk=wallet.pk).update(
        last_block_hash=node.rpc("getbestblockhash"), last_block_height=node.rpc("getblockcount")
    )
    wallet.refresh_from_db()
    warm, _ = timed(lambda: poll_wallet(wallet))
    wallet.refresh_from_db()
    poll_wallet(wallet)
    # Planner statistics, as autovacuum keeps them on a running system (without them, right
    # after 100,000 rows were written at once, PostgreSQL may read the whole table).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE ledger_networktransaction")
    result = {"n": n, "warm": warm}
    if with_reference:
        node.generate(1)
        wallet.refresh_from_db()
        result["reference"], (result["reference_calls"], result["reference_sql"]) = timed(
            lambda: reference_cycle(wallet)
        )
    node.generate(1)
    wallet.refresh_from_db()
    result["ours"], summary = timed(lambda: poll_wallet(wallet))
    result["ours_calls"], result["ours_sql"] = summary.round_trips, summary.statements
    idle = []
    for _ in range(5):
        wallet.refresh_from_db()
        took, idle_summary = timed(lambda: poll_wallet(wallet))
        idle.append(took)
    result["idle"], result["idle_calls"], result["idle_sql"] = (
        statistics.median(idle),
        idle_summary.round_trips,
        idle_summary.statements,
    )
    check(node, wallet, txids)
    line = f"N={n:>6}: "
    if with_reference:
        line += (
            f"reference {result['reference']:7.3f} s ({result['reference_calls']} node round "
            f"trips, {result['reference_sql']} SQL statements) | "
        )
    line += (
        f"ours after one new block {result['ours'] * 1000:7.1f} ms ({result['ours_calls']} node "
        f"round trips, {result['ours_sql']} SQL statements) | ours with no new block "
        f"{result['idle'] * 1000:6.2f} ms ({result['idle_calls']} node round trip, "
        f"{result['idle_sql']} SQL statements)"
    )
    if with_reference:
        line += f" | {result['reference'] / result['ours']:.0f}x"
    print(line, flush=True)
    return result


def arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--reference-up-to", type=int, default=10000)
    parser.add_argument("--notifications", type=int, default=20)
    parser.add_argument(
        "--blocks", type=int, default=20, help="blocks mined for the CPU per block notification"
    )
    parser.add_argument(
        "--quick", action="store_true", help="N=100 on a node of its own, in a few seconds"
    )
    parser.add_argument(
        "--node-dir", default=None, help="the node's kept data directory (another wallet size)"
    )
    args = parser.parse_args()
    global NODE_DIR, TXIDS
    if args.node_dir:
        NODE_DIR = Path(args.node_dir).resolve()
        TXIDS = NODE_DIR.with_name(NODE_DIR.name + "-txids.json")
    if args.quick:
        global ROUND, SPARE, SETTLE
        NODE_DIR = Path(tempfile.mkdtemp(prefix="bench-confirmations-"))
        TXIDS, ROUND, SPARE, SETTLE = NODE_DIR / "txids.json", 120, 10, 0.5
        args.n, args.reference_up_to, args.notifications, args.blocks = [100], 100, 2, 2
    return args


def main():
    args = arguments()
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    pg = LocalPostgres().start()
    node = LocalBitcoind(datadir=str(NODE_DIR), zmq=True).start()
    try:
        wallet = set_up(pg, node, max(args.n))
        tip_calls(node)
        results = {n: measure(node, wallet, n, n <= args.reference_up_to) for n in sorted(args.n)}
        if args.notifications:
            env = dict(os.environ, PYTHONPATH=str(REPO))
            runs = 1 if args.quick else 3
            notifications(node, wallet, env, args.notifications, args.blocks, runs, SETTLE)
        report(results)
    finally:
        node.stop(remove=args.quick)
        pg.stop()


def set_up(pg, node, n):
    os.environ.update(
        DATABASE_URL=pg.url,
        SECRET_KEY="bench-secret-key-" + "x" * 40,
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="127.0.0.1",
        NODE_HOSTS="127.0.0.1",  # the bench's own node on loopback
    )
    import django

    django.setup()
    from django.core.management import call_command

    from ledger.models import Currency, Wallet

    call_command("migrate", verbosity=0)
    make_transactions(node, n)
    btc = Currency.objects.create(code="BTC", crediting_threshold=1, polling_threshold=6)
    return Wallet.objects.create(name="bench", currency=btc, backend_settings={"url": node.url})


def report(results):
    # The speedups compare with the largest N the reference was timed at (10,000 unless
    # --reference-up-to says less).
    ten = results[max(n for n in results if results[n] and "reference" in results[n])]
    if results.get(100000) and results.get(10000):
        ten_ours = results[10000]["ours"]
        print(
            "ours at 100,000 / ours at 10,000 after one new block: "
            f"{results[100000]['ours'] / ten_ours:.1f}x"
        )
    print(f"idle_speedup: {ten['reference'] / ten['idle']:.0f}x")
    print(f"speedup: {ten['reference'] / ten['ours']:.0f}x")


if __name__ == "__main__":
    main()
