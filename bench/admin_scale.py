"""Operator pages at a small and at a large service, in one run, on PostgreSQL.

Run from the repository root: .venv/bin/python bench/admin_scale.py [--rebuild] [--rounds N]
[--smoke] [--quick] (--smoke: the large dataset at 1/100, in a cache of its own, to try the
script; --quick: both sizes tiny on a temporary cluster, one round, in seconds: the suite runs it)

Two databases in one PostgreSQL cluster of the bench's own (devtools.localservices):
- small: 1,000 network transactions, 10,000 ledger rows, 100 users;
- large: 1,000,000 network transactions (1% open), 5,000,000 ledger rows over 100,000 users
  (980,009 accounts), 9,300 outgoing transactions.
Built with generate_series in SQL (the ledger's row triggers off during the bulk load, then the
running totals computed once by the same SQL as migration 0009's backfill; check_balances at
the end proves them against the rows). The cluster is kept in bench/.cache/admin-scale-pg
(git-ignored) and reused; --rebuild starts from scratch.

Every page is fetched with the Django test client as a superuser, median of N rounds (5),
with its number of queries. The node is a loopback JSON-RPC double answering getbalance,
getblockcount and a listreceivedbyaddress of 100,000 rows (the dataset's addresses first).
"Reconcile now" (a POST) only queues the full reconciliation; the scan itself (the task a
worker runs: the node's 100,000 rows read and looked up) is timed apart, by calling the task,
and printed on its own line, not counted as a page.
Prints a table, then `worst_large_over_small: <x>x` and `slowest_large_page_ms: <ms>`.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.admin_scale_data import PATCH_AMOUNTS, SIZES, build, outgoing  # noqa: E402
from devtools.localservices import LocalPostgres, kept_postgres  # noqa: E402

CACHE_DIR = REPO / "bench" / ".cache" / "admin-scale-pg"
BUILD_ID = "v1"
RECEIVED_ROWS = 100_000
RECONCILE_URL = "/admin/ledger/wallet/1/reconcile/"


def node_double(received):
    from tests.rpc_double import RpcDouble

    def answer(request):
        method = request.get("method")
        result = {
            "getbalance": 12.5,
            "getblockcount": 1000,
            "listreceivedbyaddress": received,
        }.get(method)
        return {"result": result, "error": None, "id": request.get("id")}

    return RpcDouble(answer).start()


def received_rows(cursor):
    """The node's listreceivedbyaddress: the BTC wallet's addresses (with their last deposit's
    txid), then addresses the books never gave out, RECEIVED_ROWS in all."""
    cursor.execute(
        f"""SELECT a.address, n.txid FROM ledger_address a
            LEFT JOIN LATERAL (SELECT txid FROM ledger_networktransaction n
                               JOIN ledger_transaction t ON t.network_transaction_id = n.id
                               WHERE t.address_id = a.id ORDER BY n.id DESC LIMIT 1) n ON true
            WHERE a.wallet_id = 1 ORDER BY a.id LIMIT {RECEIVED_ROWS}"""
    )
    rows = [
        {"address": a, "amount": 0.001, "confirmations": 6, "txids": [t] if t else []}
        for a, t in cursor.fetchall()
    ]
    rows += [
        {"address": f"bcrt1qchange{i}", "amount": 0.0001, "confirmations": 6, "txids": []}
        for i in range(RECEIVED_ROWS - len(rows))
    ]
    return rows


# (name, URL) of the pages fetched with GET; {txid}, {address}, {user} and {broadcast_txid}
# are values read from the database being measured.
GET_PAGES = [
    ("admin home", "/admin/"),
    ("network transactions, default", "/admin/ledger/networktransaction/"),
    ("network transactions, search txid", "/admin/ledger/networktransaction/?q={txid}"),
    ("network transactions, search address", "/admin/ledger/networktransaction/?q={address}"),
    ("network transactions, open", "/admin/ledger/networktransaction/?state__exact=open"),
    ("ledger transactions, default", "/admin/ledger/transaction/"),
    ("ledger transactions, currency=BTC", "/admin/ledger/transaction/?currency__id__exact=1"),
    ("ledger transactions, search user id", "/admin/ledger/transaction/?q={user}"),
    ("ledger transactions, search txid", "/admin/ledger/transaction/?q={txid}"),
    ("ledger transactions, user filter", "/admin/ledger/transaction/?user={user}"),
    ("ledger transactions, account 900", "/admin/ledger/transaction/?account=1"),
    ("accounts, default", "/admin/ledger/account/"),
    ("accounts, search user id", "/admin/ledger/account/?q={user}"),
    ("addresses, search address", "/admin/ledger/address/?q={address}"),
    ("broadcasts", "/admin/broadcasts/broadcast/"),
    ("outgoing transactions", "/admin/broadcasts/outgoingtransaction/"),
    (
        "outgoing, search broadcast txid",
        "/admin/broadcasts/outgoingtransaction/?q={broadcast_txid}",
    ),
]


def pages(cursor):
    """(name, method, url, body) of every page timed, with values from this database."""
    cursor.execute("SELECT txid FROM ledger_networktransaction WHERE id = 2")
    txid = cursor.fetchone()[0]
    cursor.execute("SELECT address FROM ledger_address WHERE id = 3")
    address = cursor.fetchone()[0]
    cursor.execute("SELECT txid FROM broadcasts_broadcast ORDER BY id LIMIT 1")
    values = dict(txid=txid, address=address, user="user-42", broadcast_txid=cursor.fetchone()[0])
    graphql = json.dumps(
        {
            "query": 'query { user(id: "' + values["user"] + '") { currencies { id enabled '
            "balance advancedTradingBalance lockedBalance withdrawLockedBalance } } }"
        }
    )
    return [(name, "get", url.format(**values), None) for name, url in GET_PAGES] + [
        # The POST queues the full scan (timed on its own line, not as a page).
        ("reconcile now (POST: queues the scan)", "post", RECONCILE_URL, {}),
        ("reconcile page (GET: last result)", "get", RECONCILE_URL, None),
        ("user balances, GraphQL", "graphql", "/graphql", graphql),
    ]


def no_pending_reconciliation():
    """Wallet 1 with no reconciliation pending and the task queue empty (the bench has no
    worker: what the POST queued is dropped; the scan is timed by calling the task)."""
    from django_q.models import OrmQ

    from ledger.models import Wallet

    Wallet.objects.filter(pk=1).update(reconcile_requested_at=None, reconcile_requested_by=None)
    OrmQ.objects.all().delete()


FIGURES = ("worst_large_over_small", "slowest_large_page_ms")
QUICK = "--quick" in sys.argv  # both sizes small, one round, a temporary cluster: seconds


def main():
    global CACHE_DIR, RECEIVED_ROWS
    if "--smoke" in sys.argv:  # the whole run at 1/100 of the large size, to try the script
        CACHE_DIR = CACHE_DIR.with_name("admin-scale-smoke")
        SIZES["large"] = {k: v // 100 for k, v in SIZES["large"].items()}
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    if QUICK:
        SIZES["small"] = {k: v // 10 for k, v in SIZES["small"].items()}
        SIZES["large"] = {k: v // 1000 for k, v in SIZES["large"].items()}
        RECEIVED_ROWS = 1000
        pg = LocalPostgres().start()
        try:
            run(pg, reuse=False, rounds=1)
        finally:
            from django.db import connections

            from balances.cache import reset_cache

            reset_cache()  # its LISTEN connection, before the cluster goes
            connections.close_all()
            pg.stop()
        return
    with kept_postgres(CACHE_DIR, BUILD_ID, rebuild="--rebuild" in sys.argv) as (pg, reuse):
        run(pg, reuse=reuse, rounds=rounds)


def bench_environment(database_url):
    """The production settings on the bench's database, for the Django test client (no second
    factor, no TLS redirect); reconcile_profile.py uses the same."""
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
        OTP_REQUIRED="0",
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        NODE_HOSTS="127.0.0.1",  # the node double on loopback
    )
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def run(pg, reuse, rounds):
    import psycopg2

    if not reuse:
        admin = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        for size in SIZES:
            admin.cursor().execute(f"CREATE DATABASE {size}")
        admin.close()
    bench_environment(pg.url_for("small"))
    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["large"] = {**settings.DATABASES["default"], "NAME": "large"}
    results, scans = {}, {}
    for size in SIZES:
        received, timed = prepare(size, reuse)
        double = node_double(received)
        try:
            from ledger.models import Wallet

            Wallet.objects.update(backend_settings={"url": double.url})
            user, client = superuser_client()
            results[size] = time_pages(timed, client, rounds)
            scans[size] = time_scan(user, rounds)
        finally:
            double.stop()
    print_table(results, scans)


def prepare(size, reuse):
    """The size's database served as the default one, migrated, built (or reused), checked:
    (the node's received rows, the pages to time)."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    settings.DATABASES["default"]["NAME"] = size
    connections["default"].settings_dict["NAME"] = size
    connection = connections["default"]
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        if not reuse:
            build(cursor, size)
    if not reuse:
        outgoing(SIZES[size])
    with connection.cursor() as cursor:
        if not reuse:
            cursor.execute("VACUUM ANALYZE")
        else:
            patch_amounts(cursor, size)
    built = time.perf_counter() - started
    if not reuse and not QUICK and size == list(SIZES)[-1]:
        (CACHE_DIR / "BUILT").write_text(BUILD_ID)
    with connection.cursor() as cursor:
        counts = {}
        for table in ("networktransaction", "transaction", "account"):
            cursor.execute(f"SELECT count(*) FROM ledger_{table}")
            counts[table] = cursor.fetchone()[0]
        received, timed = received_rows(cursor), pages(cursor)
    report_dataset(size, counts, "reused" if reuse else f"built in {built:.0f} s")
    return received, timed


def patch_amounts(cursor, size):
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM ledger_networktransaction"
        " WHERE type = 'deposit' AND amount IS NULL)"
    )
    if cursor.fetchone()[0]:
        cursor.execute(PATCH_AMOUNTS)
        print(f"{size}: cache patched: {cursor.rowcount:,} deposit amounts set")
        cursor.execute("VACUUM ANALYZE ledger_networktransaction")


def report_dataset(size, counts, how):
    from ledger.services import balance_differences

    t0 = time.perf_counter()
    differences = balance_differences()
    check_s = time.perf_counter() - t0
    print(
        f"{size}: {counts['networktransaction']:,} network transactions, "
        f"{counts['transaction']:,} ledger rows, {counts['account']:,} accounts; {how}; "
        f"check_balances {'agrees' if not differences else f'{len(differences)} DIFFERENCES'} "
        f"({check_s:.1f} s)"
    )


def superuser_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults=dict(is_staff=True, is_superuser=True)
    )
    client = Client()
    client.force_login(user)
    return user, client


def time_pages(timed, client, rounds):
    """(name, median ms, queries) of every page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    out = []
    for name, method, url, body in timed:
        times, queries = [], 0
        for _ in range(rounds):
            if url == RECONCILE_URL and method == "post":
                no_pending_reconciliation()  # each round queues, none finds one pending
            with CaptureQueriesContext(connection) as captured:
                t = time.perf_counter()
                if method == "get":
                    response = client.get(url)
                elif method == "post":
                    response = client.post(url, body)
                else:
                    response = client.post(url, body, content_type="application/json")
                times.append((time.perf_counter() - t) * 1000)
            assert response.status_code in (200, 302), (name, response.status_code)
            queries = len(captured)
        out.append((name, statistics.median(times), queries))
    return out


def time_scan(user, rounds):
    """The scan "Reconcile now" queues, run here as the worker runs it: the node's
    received-by-address rows read and looked up. Not a page: no request waits for it."""
    from ledger.reconcile import reconcile_wallet_task

    scan = []
    for _ in range(rounds):
        no_pending_reconciliation()
        t = time.perf_counter()
        reconcile_wallet_task(1, user.pk)
        scan.append((time.perf_counter() - t) * 1000)
    no_pending_reconciliation()
    return statistics.median(scan)


def print_table(results, scans):
    print()
    print("| page | small ms | large ms | large/small | queries small / large |")
    print("| --- | ---: | ---: | ---: | ---: |")
    worst, slowest = 0.0, ("", 0.0)
    for (name, small_ms, small_q), (_, large_ms, large_q) in zip(
        results["small"], results["large"], strict=True
    ):
        ratio = large_ms / small_ms
        worst = max(worst, ratio)
        if large_ms > slowest[1]:
            slowest = (name, large_ms)
        print(
            f"| {name} | {small_ms:.0f} | {large_ms:.0f} | {ratio:.1f}x | {small_q} / {large_q} |"
        )
    print(
        f"reconcile scan (background task, not a page): {scans['small']:.0f} ms small / "
        f"{scans['large']:.0f} ms large"
    )
    print(f"load: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores")
    print(f"slowest_large_page: {slowest[0]}")
    print(f"worst_large_over_small: {worst:.1f}x")
    print(f"slowest_large_page_ms: {slowest[1]:.0f}")


if __name__ == "__main__":
    main()
