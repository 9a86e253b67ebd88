"""Balance cache benchmark on PostgreSQL: 1,000,000 ledger entries, 10,000 users, 20 currencies.

Run from the repository root: .venv/bin/python bench/balances.py [--rebuild]
Starts its own PostgreSQL (devtools.localservices.LocalPostgres). The built cluster is kept in
bench/.cache/balances-pg (git-ignored) and reused by the next run, since building takes about a
minute on two cores; --rebuild starts from scratch. The last line is `hot_vs_uncached: <ratio>x`.
"""

import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.localservices import kept_postgres  # noqa: E402

CACHE_DIR = REPO / "bench" / ".cache" / "balances-pg"
BUILD_ID = "v1 users=10000 currencies=20 entries=1000000"
WORKERS = max(1, min(4, os.cpu_count() or 1))

USERS, CURRENCIES, CODES = 10_000, 20, (201, 202, 203, 204, 205, 206, 230)
ENTRIES = 1_000_000
PAIRS = USERS * CURRENCIES  # each (user, currency) pair gets ENTRIES / PAIRS = 5 entries
FIRST_USER_ACCOUNT = CURRENCIES + 1  # ids 1..20 are the wallets' 900 network accounts

# account id of (user u, currency c, code index k)
ACC = f"({FIRST_USER_ACCOUNT} + ((%(u)s) * {CURRENCIES} + (%(c)s)) * 7 + (%(k)s))"


def acc(u, c, k):
    return ACC % {"u": u, "c": c, "k": k}


# Entry j of a pair: 0 deposit 900 -> 201, 1: 201 -> 202, 2: 202 -> 230, 3: 201 -> 203,
# 4: 201 -> 204.
SOURCE_K = "CASE j WHEN 1 THEN 0 WHEN 2 THEN 1 WHEN 3 THEN 0 WHEN 4 THEN 0 END"
DEST_K = "CASE j WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 6 WHEN 3 THEN 2 WHEN 4 THEN 3 END"

SETUP_SQL = [
    f"""INSERT INTO ledger_currency (id, code, name, decimals, enabled, crediting_threshold,
                                    polling_threshold, network)
        SELECT c + 1, 'C' || lpad(c::text, 2, '0'), 'currency ' || c, 8, true, 3, 6, 'regtest'
        FROM generate_series(0, {CURRENCIES - 1}) c""",
    f"""INSERT INTO ledger_wallet (id, name, currency_id, backend, backend_settings, enabled,
                                  last_block_hash, created_at, last_reconciliation,
                                  last_rescan_result)
        SELECT c + 1, 'wallet-' || c, c + 1, 'bitcoind', '{{}}'::jsonb, true, '', now(),
               '{{}}'::jsonb, '{{}}'::jsonb
        FROM generate_series(0, {CURRENCIES - 1}) c""",
    f"""INSERT INTO ledger_account (id, currency_id, code, user_id, wallet_id, created_at)
        SELECT c + 1, c + 1, 900, NULL, c + 1, now() FROM generate_series(0, {CURRENCIES - 1}) c""",
    "SELECT setval(pg_get_serial_sequence('ledger_currency', 'id'), "
    "(SELECT max(id) FROM ledger_currency))",
    "SELECT setval(pg_get_serial_sequence('ledger_wallet', 'id'), "
    "(SELECT max(id) FROM ledger_wallet))",
    "SELECT setval(pg_get_serial_sequence('ledger_account', 'id'), "
    f"{FIRST_USER_ACCOUNT + USERS * CURRENCIES * 7})",
]


def accounts_sql(lo, hi):  # users lo..hi-1
    return f"""INSERT INTO ledger_account (id, currency_id, code, user_id, wallet_id, created_at)
        SELECT {acc("u", "c", "k")}, c + 1, (ARRAY{list(CODES)})[k + 1], 'user-' || u, NULL, now()
        FROM generate_series({lo}, {hi - 1}) u, generate_series(0, {CURRENCIES - 1}) c,
             generate_series(0, 6) k"""


def entries_sql(lo, hi):  # entries lo..hi-1, through the ledger's CHECKs, FKs and trigger
    return f"""INSERT INTO ledger_transaction (currency_id, source_id, destination_id, amount,
           kind, label, created_at)
        SELECT c + 1,
               CASE WHEN j = 0 THEN c + 1 ELSE {acc("u", "c", SOURCE_K)} END,
               {acc("u", "c", DEST_K)},
               CASE WHEN j = 0 THEN 100000000 + i ELSE 1000 * j + (i % 97) END,
               CASE WHEN j = 0 THEN 'deposit' ELSE 'internal' END, '', now()
        FROM (SELECT i, i % {USERS} AS u, (i / {USERS}) % {CURRENCIES} AS c, i / {PAIRS} AS j
              FROM generate_series({lo}, {hi - 1}) i) g"""


def in_parallel(dsn, statements):
    """One connection per statement, WORKERS at a time: the per-row trigger work uses every core."""
    import psycopg2

    errors = []

    def run(sql):
        try:
            conn = psycopg2.connect(dsn)
            with conn, conn.cursor() as cursor:
                cursor.execute(sql)
            conn.close()
        except Exception as exc:
            errors.append(exc)

    for start in range(0, len(statements), WORKERS):
        threads = [
            threading.Thread(target=run, args=(sql,)) for sql in statements[start : start + WORKERS]
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def slices(total, parts):
    step = -(-total // parts)
    return [(lo, min(lo + step, total)) for lo in range(0, total, step)]


UNCACHED_SQL = """
SELECT COALESCE((SELECT SUM(t.amount) FROM ledger_transaction t WHERE t.destination_id = a.id), 0)
     - COALESCE((SELECT SUM(t.amount) FROM ledger_transaction t WHERE t.source_id = a.id), 0)
FROM ledger_account a JOIN ledger_currency c ON c.id = a.currency_id
WHERE a.user_id = %s AND c.code = %s AND a.code = %s
"""


def main():
    with kept_postgres(CACHE_DIR, BUILD_ID, rebuild="--rebuild" in sys.argv) as (pg, reuse):
        try:
            run(pg, reuse=reuse)
        finally:
            try:
                from balances.cache import reset_cache

                reset_cache()
            except Exception:
                pass


def run(pg, reuse):
    import psycopg2

    if not reuse:
        admin = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE bench")
        admin.close()
    os.environ.update(
        DATABASE_URL=pg.url_for("bench"),
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
    )
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from balances import cache as cache_module

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    if not reuse:
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in SETUP_SQL:
                cursor.execute(sql)
        dsn = f"host=127.0.0.1 port={pg.port} user=postgres dbname=bench"
        in_parallel(dsn, [accounts_sql(lo, hi) for lo, hi in slices(USERS, WORKERS)])
        in_parallel(dsn, [entries_sql(lo, hi) for lo, hi in slices(ENTRIES, WORKERS)])
    built = time.perf_counter() - started
    with connection.cursor() as cursor:
        if not reuse:
            cursor.execute("VACUUM ANALYZE")
            (CACHE_DIR / "BUILT").write_text(BUILD_ID)
        cursor.execute("SELECT count(*) FROM ledger_transaction")
        entries = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(DISTINCT user_id) FROM ledger_account WHERE user_id IS NOT NULL"
        )
        users = cursor.fetchone()[0]
    how = (
        f"reused from {CACHE_DIR.relative_to(REPO)}"
        if reuse
        else f"built in {built:.1f} s with {WORKERS} connections (+ VACUUM ANALYZE "
        f"{time.perf_counter() - started - built:.1f} s)"
    )
    print(
        f"ledger: {entries:,} entries, {users:,} users, {CURRENCIES} currencies, "
        f"{users * CURRENCIES * 7:,} user accounts; {how}"
    )
    assert entries >= 1_000_000 and users == USERS

    cache = cache_module.get_cache()
    print(f"cache: cross-process mode {cache.mode}, max users {cache.max_users}")
    cache.get_user("user-9999")  # opens the connection: not part of the cold-load figure

    # Cold loads: one user with 20 currencies x 7 accounts each time, counting the queries.
    times, queries = [], []
    for u in range(100, 130):
        user = f"user-{u}"
        with CaptureQueriesContext(connection) as captured:
            t0 = time.perf_counter()
            loaded = cache.get_user(user)
            times.append(time.perf_counter() - t0)
        queries.append(len(captured))
        assert len(loaded) == CURRENCIES and all(len(v) == 7 for v in loaded.values())
    print(
        "cold load of one user (20 currencies x 7 accounts): median "
        f"{statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms over "
        f"{len(times)} users; queries per load: {sorted(set(queries))}"
    )

    # Correctness spot check against the uncached query.
    user, cur, code = "user-123", "C07", 201
    with connection.cursor() as cursor:
        for c in ("C00", "C07", "C19"):
            for k in CODES:
                cursor.execute(UNCACHED_SQL, [user, c, k])
                assert cursor.fetchone()[0] == cache.get_balance(user, c, k), (c, k)

    # Hot reads from one thread; best of 5 rounds (the machine is shared), same for the query.
    get_balance = cache.get_balance
    rates = []
    for _ in range(5):
        n = 300_000
        t0 = time.perf_counter()
        for _ in range(n):
            get_balance(user, cur, code)
        rates.append(n / (time.perf_counter() - t0))
    hot = max(rates)
    stats = cache.stats()
    print(
        f"hot get_balance, one thread: {hot:,.0f} reads/s ({1e6 / hot:.2f} us/read; "
        f"rounds {', '.join(f'{r / 1e6:.2f}M' for r in rates)})"
    )

    # The same balance with the uncached query (one round trip, index-only sums).
    rates = []
    with connection.cursor() as cursor:
        for _ in range(5):
            m = 1000
            t0 = time.perf_counter()
            for _ in range(m):
                cursor.execute(UNCACHED_SQL, [user, cur, code])
                cursor.fetchone()
            rates.append(m / (time.perf_counter() - t0))
    uncached = max(rates)
    print(
        f"uncached query for the same balance: {uncached:,.0f} reads/s ({1e6 / uncached:.1f} "
        f"us/read; rounds {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    assert stats["loads"] == 1 + len(times)  # the hot loop never loaded

    # 200 threads ask for the same cold user at once.
    from django.db import connections

    loads_before = cache.stats()["loads"]
    real_loader = cache.loader
    calls = []

    def counting_loader(user_id):
        calls.append(user_id)
        return real_loader(user_id)

    cache.loader = counting_loader
    barrier = threading.Barrier(200)
    answers = []

    def ask():
        try:
            barrier.wait(30)
            answers.append(cache.get_balance("user-4242", "C03", 201))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    db_loads = len(calls)
    s = cache.stats()
    print(
        f"200 threads, same cold user: {db_loads} database load(s) "
        f"({s['loads'] - loads_before} counted by the cache, {s['waits']} waited), "
        f"{len(answers)} answers, distinct values {len(set(answers))}"
    )
    assert db_loads == 1 and len(answers) == 200 and len(set(answers)) == 1
    print(f"hot_vs_uncached: {hot / uncached:.0f}x")


if __name__ == "__main__":
    main()
