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

from devtools.localservices import LocalPostgres, kept_postgres  # noqa: E402

CACHE_DIR = REPO / "bench" / ".cache" / "admin-scale-pg"
BUILD_ID = "v1"
RECEIVED_ROWS = 100_000
RECONCILE_URL = "/admin/ledger/wallet/1/reconcile/"

# A deposit's amount in base units, from its row number i (network transaction id - 1).
DEPOSIT_AMOUNT = "100000 + {i} % 1000"

SIZES = {
    # users, ledger rows, network transactions, outgoing, second-currency users
    "small": dict(users=100, ledger=10_000, network=1_000, outgoing=100, ltc_users=40),
    "large": dict(
        users=100_000, ledger=5_000_000, network=1_000_000, outgoing=9_300, ltc_users=40_000
    ),
}

# Wallets 1 (BTC), 2 (LTC), 3 (BTC, a second wallet); system accounts 1..9:
# wallet w, code index k (900, 910, 920) -> (w - 1) * 3 + k + 1. User pair p (a user in a
# currency: p < users is BTC user p, then LTC user p - users), code index k of
# (201, 202, 203, 204, 205, 206, 230) -> account 10 + p * 7 + k; its address id p + 1.


def build_sql(users, ledger, network, ltc_users, **_):
    pairs = users + ltc_users
    cur = f"(CASE WHEN p < {users} THEN 1 ELSE 2 END)"
    uid = f"'user-' || (CASE WHEN p < {users} THEN p ELSE p - {users} END)"
    deposits = network - network // 100  # closed ones are credited
    internal = ledger - deposits
    credited = f"CASE WHEN i % 100 = 0 THEN NULL ELSE now() - ({network} - i) * interval '29 s' END"
    return [
        """INSERT INTO ledger_currency (id, code, name, decimals, enabled, crediting_threshold,
               polling_threshold, network)
           VALUES (1, 'BTC', 'Bitcoin', 8, true, 3, 6, 'regtest'),
                  (2, 'LTC', 'Litecoin', 8, true, 3, 6, 'regtest')""",
        """INSERT INTO ledger_wallet (id, name, currency_id, backend, backend_settings, enabled,
               last_block_hash, created_at, last_reconciliation, last_rescan_result,
               last_poll_error, last_reconcile_error)
           VALUES (1, 'btc-hot', 1, 'bitcoind', '{}', true, '', now(), '{}', '{}', '', ''),
                  (2, 'ltc-hot', 2, 'bitcoind', '{}', true, '', now(), '{}', '{}', '', ''),
                  (3, 'btc-cold', 1, 'bitcoind', '{}', true, '', now(), '{}', '{}', '', '')""",
        """INSERT INTO ledger_account (id, currency_id, code, user_id, wallet_id, created_at)
           SELECT (w - 1) * 3 + k + 1, CASE w WHEN 2 THEN 2 ELSE 1 END,
                  (ARRAY[900, 910, 920])[k + 1], NULL, w, now()
           FROM generate_series(1, 3) w, generate_series(0, 2) k""",
        f"""INSERT INTO ledger_account (id, currency_id, code, user_id, wallet_id, created_at)
           SELECT 10 + p * 7 + k, {cur}, (ARRAY[201, 202, 203, 204, 205, 206, 230])[k + 1],
                  {uid}, NULL, now() - interval '400 days'
           FROM generate_series(0, {pairs - 1}) p, generate_series(0, 6) k""",
        f"""INSERT INTO ledger_address (id, currency_id, wallet_id, account_id, address, kind,
               label, created_at)
           SELECT p + 1, {cur}, {cur}, 10 + p * 7, 'bcrt1q' || md5('a' || p), 'receiving',
                  {uid}, now() - interval '400 days'
           FROM generate_series(0, {pairs - 1}) p""",
        # Network transaction i pays pair i % pairs; every 100th is open (not yet credited).
        # Its amount (DEPOSIT_AMOUNT) is the credit's below: the home page sums the open ones.
        f"""INSERT INTO ledger_networktransaction (id, currency_id, wallet_id, txid, type, state,
               confirmations, max_confirmations, opened_at, closed_at, credited_at, last_error,
               flagged, flag_reason, close_reason, block_hash, amount)
           SELECT i + 1, {cur}, {cur}, md5('t' || i) || md5('u' || i), 'deposit',
                  CASE WHEN i % 100 = 0 THEN 'open' ELSE 'closed' END,
                  CASE WHEN i % 100 = 0 THEN 1 ELSE 6 END, CASE WHEN i % 100 = 0 THEN 1 ELSE 6 END,
                  now() - ({network} - i) * interval '30 seconds',
                  {credited}, {credited},
                  '', i % 100000 = 7, '', '', '', {DEPOSIT_AMOUNT.format(i="i")}
           FROM (SELECT i, i % {pairs} AS p FROM generate_series(0, {network - 1}) i) g""",
        # A credit per closed deposit: 900 of its wallet -> the pair's 201.
        f"""INSERT INTO ledger_transaction (currency_id, source_id, destination_id, amount, kind,
               network_transaction_id, address_id, label, created_at)
           SELECT {cur}, CASE WHEN p < {users} THEN 1 ELSE 4 END, 10 + p * 7,
                  {DEPOSIT_AMOUNT.format(i="i")}, 'deposit', i + 1, p + 1, '',
                  now() - ({network} - i) * interval '29 seconds'
           FROM (SELECT i, i % {pairs} AS p FROM generate_series(0, {network - 1}) i) g
           WHERE i % 100 <> 0""",
        # Internal moves between a user's own accounts, older first.
        f"""INSERT INTO ledger_transaction (currency_id, source_id, destination_id, amount, kind,
               label, created_at)
           SELECT {cur}, 10 + p * 7 + CASE WHEN j % 2 = 0 THEN 0 ELSE 1 + j % 5 END,
                  10 + p * 7 + CASE WHEN j % 2 = 0 THEN 1 + j % 5 ELSE 0 END,
                  1 + j % 50, 'internal', '', now() - ({internal} - j) * interval '5 seconds'
           FROM (SELECT j, (j::bigint * 7919) % {pairs} AS p
                 FROM generate_series(0, {internal - 1}) j) g""",
    ]


# Caches built before the builder set the deposit rows' amount (open rows of unknown amount
# the home page could only count): patched once, in place, by the same rule.
PATCH_AMOUNTS = (
    "UPDATE ledger_networktransaction SET amount = "
    + DEPOSIT_AMOUNT.format(i="(id - 1)")
    + " WHERE type = 'deposit' AND amount IS NULL"
)


SEQUENCES = [
    ("ledger_currency", "id"),
    ("ledger_wallet", "id"),
    ("ledger_account", "id"),
    ("ledger_address", "id"),
    ("ledger_networktransaction", "id"),
    ("ledger_transaction", "id"),
]


def build(cursor, size):
    spec = SIZES[size]
    # The ledger's row triggers (checks and the running totals) are off for the bulk load only;
    # the rows are consistent by construction and check_balances proves the totals afterwards.
    cursor.execute("SET session_replication_role = replica")
    for sql in build_sql(**spec):
        cursor.execute(sql)
    cursor.execute("SET session_replication_role = DEFAULT")
    backfill = __import__(
        "ledger.migrations.0010_running_totals_and_admin_indexes", fromlist=["BACKFILL"]
    ).BACKFILL
    cursor.execute(backfill)
    for table, column in SEQUENCES:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"(SELECT max({column}) FROM {table}))"
        )


def outgoing(spec):
    """Outgoing transactions through the ORM (the triggers on): queued 201 -> 204, and all
    but 300 sent in broadcasts of 100 (204 -> 900)."""
    from django.db import transaction
    from django.utils import timezone

    from broadcasts.models import Broadcast, OutgoingTransaction
    from ledger.models import Transaction

    n, users = spec["outgoing"], spec["users"]
    sent = max(0, n - 300) if n > 300 else n // 2
    now = timezone.now()
    with transaction.atomic():
        broadcasts = Broadcast.objects.bulk_create(
            [
                Broadcast(
                    wallet_id=1,
                    state="broadcasted",
                    label=f"broadcast {b}",
                    txid=f"{b:064x}",
                    opened_at=now,
                    broadcasted_at=now,
                    output_count=100,
                    transaction_count=100,
                    total=100 * 1000,
                    fee=500,
                )
                for b in range(-(-sent // 100))
            ]
        )
        locks, sends = [], []
        for o in range(n):
            p = (o * 13) % users
            locks.append(
                Transaction(
                    currency_id=1,
                    source_id=10 + p * 7,
                    destination_id=10 + p * 7 + 3,
                    amount=1000,
                    kind="pending_outgoing",
                    label="withdrawal",
                )
            )
            if o < sent:
                sends.append(
                    Transaction(
                        currency_id=1,
                        source_id=10 + p * 7 + 3,
                        destination_id=1,
                        amount=1000,
                        kind="broadcasted",
                        label="sent",
                    )
                )
        locks = Transaction.objects.bulk_create(locks, batch_size=2000)
        Transaction.objects.bulk_create(sends, batch_size=2000)
        OutgoingTransaction.objects.bulk_create(
            [
                OutgoingTransaction(
                    wallet_id=1,
                    currency_id=1,
                    account_id=10 + ((o * 13) % users) * 7,
                    hold_account_id=10 + ((o * 13) % users) * 7 + 3,
                    address=f"bcrt1qexternal{o}",
                    amount=1000,
                    state="broadcasted" if o < sent else "queued",
                    broadcast=broadcasts[o // 100] if o < sent else None,
                    lock_entry=lock,
                )
                for o, lock in enumerate(locks)
            ],
            batch_size=2000,
        )


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


def pages(cursor):
    """(name, method, url, body) of every page timed, with values from this database."""
    cursor.execute("SELECT txid FROM ledger_networktransaction WHERE id = 2")
    txid = cursor.fetchone()[0]
    cursor.execute("SELECT address FROM ledger_address WHERE id = 3")
    address = cursor.fetchone()[0]
    cursor.execute("SELECT txid FROM broadcasts_broadcast ORDER BY id LIMIT 1")
    broadcast_txid = cursor.fetchone()[0]
    user = "user-42"
    graphql = json.dumps(
        {
            "query": 'query { user(id: "' + user + '") { currencies { id enabled balance '
            "advancedTradingBalance lockedBalance withdrawLockedBalance } } }"
        }
    )
    return [
        ("admin home", "get", "/admin/", None),
        ("network transactions, default", "get", "/admin/ledger/networktransaction/", None),
        (
            "network transactions, search txid",
            "get",
            f"/admin/ledger/networktransaction/?q={txid}",
            None,
        ),
        (
            "network transactions, search address",
            "get",
            f"/admin/ledger/networktransaction/?q={address}",
            None,
        ),
        (
            "network transactions, open",
            "get",
            "/admin/ledger/networktransaction/?state__exact=open",
            None,
        ),
        ("ledger transactions, default", "get", "/admin/ledger/transaction/", None),
        (
            "ledger transactions, currency=BTC",
            "get",
            "/admin/ledger/transaction/?currency__id__exact=1",
            None,
        ),
        (
            "ledger transactions, search user id",
            "get",
            f"/admin/ledger/transaction/?q={user}",
            None,
        ),
        ("ledger transactions, search txid", "get", f"/admin/ledger/transaction/?q={txid}", None),
        (
            "ledger transactions, user filter",
            "get",
            f"/admin/ledger/transaction/?user={user}",
            None,
        ),
        ("ledger transactions, account 900", "get", "/admin/ledger/transaction/?account=1", None),
        ("accounts, default", "get", "/admin/ledger/account/", None),
        ("accounts, search user id", "get", f"/admin/ledger/account/?q={user}", None),
        ("addresses, search address", "get", f"/admin/ledger/address/?q={address}", None),
        ("broadcasts", "get", "/admin/broadcasts/broadcast/", None),
        ("outgoing transactions", "get", "/admin/broadcasts/outgoingtransaction/", None),
        (
            "outgoing, search broadcast txid",
            "get",
            f"/admin/broadcasts/outgoingtransaction/?q={broadcast_txid}",
            None,
        ),
        # The POST queues the full scan (timed below on its own line, not as a page).
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
