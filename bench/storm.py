"""A deposit storm: N deposits to N users' addresses mined in one block by the outside node,
with the listener (`manage.py listen_node`, on our node's ZMQ feed) running.

    .venv/bin/python bench/storm.py [--n 1000 10000] [--quick] [--database-url URL]

Two regtest nodes of its own: "outside" pays, one transaction per deposit, while our node is off
the network, then mines them all in one block; our node comes back and receives that block. From
then on: the time until every deposit is recorded and until every deposit is credited (the
currency credits at 1 confirmation), the listener's CPU per deposit (its own process; the
database's and the node's CPU are not counted), the balances query showing them, and the idle
poll cycle afterwards. Then the reference design on the same storm: per transaction one node call
(gettransaction) and one database transaction (record and credit), on a second wallet with the
same addresses in another currency. --quick: N = 20, figures printed, no target checked.
--database-url: an existing migrated empty database (the suite's) instead of a PostgreSQL of its
own.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.localservices import LocalBitcoind, LocalPostgres  # noqa: E402

FAN = 2000  # outputs per fan-out transaction
DEPOSIT = Decimal("0.00100000")
# Figure lines (the largest storm); its quick mode runs in tests/test_bench_storm.py.
FIGURES = ("storm_credited_s", "storm_cpu_ms_per_deposit")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def rpc_of(node):
    from bitcoinrpc.authproxy import AuthServiceProxy

    return AuthServiceProxy(node.url, timeout=600)


def make_users(wallet, anchor, n):
    """n users, each a receiving address on our node, given to the storm wallet and (same
    address, other currency) to the anchor's wallet."""
    from ledger.models import Account, Address

    rpc = rpc_of_wallet(wallet)
    addresses = []
    for start in range(0, n, FAN):
        addresses += rpc.batch_([["getnewaddress"] for _ in range(min(FAN, n - start))])
    for w in (wallet, anchor):
        accounts = Account.objects.bulk_create(
            [Account(currency_id=w.currency_id, code=201, user_id=f"user-{i}") for i in range(n)],
            batch_size=5000,
        )
        Address.objects.bulk_create(
            [
                Address(
                    currency_id=w.currency_id,
                    wallet=w,
                    account=acc,
                    address=addr,
                    kind=Address.Kind.RECEIVING,
                    label=acc.user_id,
                )
                for acc, addr in zip(accounts, addresses, strict=True)
            ],
            batch_size=5000,
        )
    return addresses


def rpc_of_wallet(wallet):
    from bitcoinrpc.authproxy import AuthServiceProxy

    return AuthServiceProxy(wallet.backend_settings["url"], timeout=600)


def pay_each(outside, addresses):
    """One transaction per address from the outside node, all in its mempool: fan-outs to its own
    addresses (mined), then one raw transaction spending each output. Returns the txids."""
    rpc = rpc_of(outside)
    txids = []
    for start in range(0, len(addresses), FAN):
        chunk = addresses[start : start + FAN]
        own = rpc.batch_([["getnewaddress"] for _ in chunk])
        txid = rpc.sendmany("", {a: str(DEPOSIT + Decimal("0.0001")) for a in own})
        outside.generate(1)
        vouts = {
            o["scriptPubKey"]["addresses"][0]: o["n"]
            for o in rpc.decoderawtransaction(rpc.gettransaction(txid)["hex"])["vout"]
            if o["scriptPubKey"].get("addresses")
        }
        for part in range(0, len(chunk), 500):
            pairs = list(zip(own[part : part + 500], chunk[part : part + 500], strict=True))
            raws = rpc.batch_(
                [
                    ["createrawtransaction", [{"txid": txid, "vout": vouts[o]}], {a: str(DEPOSIT)}]
                    for o, a in pairs
                ]
            )
            signed = rpc.batch_([["signrawtransaction", r] for r in raws])
            txids += rpc.batch_([["sendrawtransaction", s["hex"]] for s in signed])
    return txids


class ListenerChild:
    def __init__(self, wallet_name):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "listen_node",
                "--wallet",
                wallet_name,
                "--resync",
                "3600",
                "--no-notify-socket",
                "-v",
                "2",
            ],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def storm(outside, ours, wallet, anchor, n):
    """One storm of n deposits; prints its figures and returns them."""
    from ledger.models import NetworkTransaction as NT

    addresses = make_users(wallet, anchor, n)
    listener = ListenerChild(wallet.name)
    try:
        wait(lambda: any(": start:" in x for x in listener.lines), 60, "the listener's start")
        ours.rpc("setnetworkactive", False)
        wait(lambda: ours.rpc("getconnectioncount") == 0, 30, "our node off the network")
        txids = pay_each(outside, addresses)
        [block] = outside.generate(1)
        height = outside.rpc("getblockcount")
        deposits = NT.objects.filter(wallet=wallet, type="deposit")
        before = cpu_seconds(listener.proc.pid)
        reconnect = time.perf_counter()
        rejoin(ours, outside, height)
        arrived = time.perf_counter()
        wait(lambda: deposits.count() == n, 600, f"{n} deposits recorded: {listener.lines[-3:]}")
        recorded = time.perf_counter()
        credited_rows = deposits.filter(credited_at__isnull=False)
        wait(lambda: credited_rows.count() == n, 600, f"{n} credited: {listener.lines[-3:]}")
        credited = time.perf_counter()
        time.sleep(0.3)  # the listener's last wake-up
        cpu = cpu_seconds(listener.proc.pid) - before
    finally:
        listener.stop()
    assert ours.rpc("getbestblockhash") == block
    figures = {
        "n": n,
        "arrival": arrived - reconnect,
        "recorded": recorded - arrived,
        "credited": credited - arrived,
        "cpu_per_deposit": cpu / n,
    }
    print_storm(figures, cpu, listener.lines)
    show_balances(wallet, n)
    idle_cycle(wallet)
    figures["anchor"] = reference(anchor, txids)
    return figures


def rejoin(ours, outside, height):
    """Our node back on the network, until the storm's block reaches it."""
    ours.rpc("setnetworkactive", True)
    ours.rpc("addnode", f"127.0.0.1:{outside.p2p_port}", "onetry")  # not at the retry's pace
    wait(lambda: ours.rpc("getblockcount") == height, 120, "the block at our node")


def print_storm(figures, cpu, lines):
    """A storm's figures, then what each of the listener's wake-ups did, and how long."""
    n = figures["n"]
    print(
        f"storm N={n:,}: the block reached our node {figures['arrival'] * 1000:.0f} ms after it "
        f"rejoined; from then, all recorded in {figures['recorded'] * 1000:.0f} ms, all credited "
        f"in {figures['credited'] * 1000:.0f} ms; listener CPU {cpu:.2f} s = "
        f"{figures['cpu_per_deposit'] * 1000:.3f} ms per deposit",
        flush=True,
    )
    for line in lines:  # what each of the listener's wake-ups did, and how long
        if "block" in line or "transaction(s)" in line:
            print(f"  listener: {line}")


def show_balances(wallet, n):
    """The balances query for a few of them, and every user's 201 balance by SQL."""
    from django.test import Client

    from balances.models import ApiToken
    from ledger.models import AccountBalance

    raw = ApiToken.issue(f"storm {n}")[1]
    client, shown = Client(), []
    for user in ("user-0", f"user-{n // 2}", f"user-{n - 1}"):
        query = f'query {{ user(id: "{user}") {{ currencies {{ id balance }} }} }}'
        reply = client.post(
            "/graphql",
            {"query": query},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
            HTTP_X_FORWARDED_PROTO="https",
        ).json()
        row = [c for c in reply["data"]["user"]["currencies"] if c["id"] == wallet.currency.code]
        shown.append(f"{user} {row[0]['balance']}")
        assert row[0]["balance"] == str(DEPOSIT), reply
    paid = AccountBalance.objects.filter(
        currency_id=wallet.currency_id, code=201, balance=int(DEPOSIT * 10**8)
    ).count()
    assert paid == n, paid
    print(f"balances query: {', '.join(shown)}; {paid:,} users' balance 201 = {DEPOSIT}")


def idle_cycle(wallet):
    import statistics

    from ledger.confirmations.cycle import poll_wallet

    took = []
    for _ in range(5):
        wallet.refresh_from_db()  # the listener moved its cursor
        started = time.perf_counter()
        summary = poll_wallet(wallet)
        took.append(time.perf_counter() - started)
    print(
        f"idle poll cycle afterwards: {statistics.median(took) * 1000:.1f} ms (median of 5; "
        f"{summary.round_trips} node round trip(s), {summary.statements} SQL statements)"
    )


def reference(anchor, txids):
    """The reference design on the same storm: one gettransaction and one database transaction
    (record, then credit) per transaction, as a walletnotify per transaction would."""
    from django.db import transaction

    from ledger.confirmations.crediting import credit_deposit, record_deposits
    from ledger.models import NetworkTransaction as NT

    backend = anchor.get_backend()
    cpu, started = time.process_time(), time.perf_counter()
    for txid in txids:
        info = backend.get_transaction(txid)
        with transaction.atomic():
            record_deposits(anchor, [info])
            row = NT.objects.get(wallet=anchor, txid=txid, type="deposit")
            credit_deposit(row, info, anchor.currency)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert NT.objects.filter(wallet=anchor, credited_at__isnull=False).count() == len(txids)
    print(
        f"reference design, same storm: all recorded and credited in {took * 1000:.0f} ms; "
        f"CPU {cpu / len(txids) * 1000:.3f} ms per deposit",
        flush=True,
    )
    return {"credited": took, "cpu_per_deposit": cpu / len(txids)}


def setup_django(database_url):
    """Django on `database_url` (migrated here when `pg` made it)."""
    os.environ.update(
        DATABASE_URL=database_url,
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-secret-key-" + "x" * 40,
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "cryptoadmin.settings"),
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="127.0.0.1,testserver",
        NODE_HOSTS="127.0.0.1",  # the bench's own nodes on loopback
        BEHIND_TLS_PROXY="1",
    )
    import django

    django.setup()


def wallets(ours, n):
    from ledger.models import Currency, Wallet

    made = []
    for code, name in ((f"S{n}", f"storm-{n}"), (f"R{n}", f"reference-{n}")):
        currency = Currency.objects.create(
            code=code[:10], name=name, crediting_threshold=1, polling_threshold=6
        )
        made.append(
            Wallet.objects.create(
                name=name,
                currency=currency,
                backend="bitcoind",
                backend_settings={"url": ours.url, "zmq": ours.zmq_url},
            )
        )
    return made


def print_results(results):
    """Each storm against its reference, then the figures of the largest."""
    for r in results:
        print(
            f"storm_credited_s N={r['n']}: {r['credited']:.2f} (reference "
            f"{r['anchor']['credited']:.2f}); cpu_ms_per_deposit: "
            f"{r['cpu_per_deposit'] * 1000:.3f} (reference "
            f"{r['anchor']['cpu_per_deposit'] * 1000:.3f})"
        )
    largest = results[-1]
    print(f"storm_credited_s: {largest['credited']:.2f}")
    print(f"storm_cpu_ms_per_deposit: {largest['cpu_per_deposit'] * 1000:.3f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    sizes = [20] if args.quick else args.n
    pg = None if args.database_url else LocalPostgres().start()
    outside = LocalBitcoind().start()
    ours = LocalBitcoind(peer=outside, zmq=True).start()
    try:
        setup_django(args.database_url or pg.url)
        if pg is not None:
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
        outside.generate(101 + sum(-(-n // FAN) for n in sizes))
        wait(lambda: ours.rpc("getblockcount") == outside.rpc("getblockcount"), 60, "sync")
        results = [storm(outside, ours, *wallets(ours, n), n) for n in sizes]
        print_results(results)
        print(json.dumps({"storms": results}))
    finally:
        from django.db import connections

        from balances.cache import reset_cache

        reset_cache()
        connections.close_all()
        ours.stop()
        outside.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
