"""Balance cache benchmark on PostgreSQL: 1,000,000 ledger entries, 10,000 users, 20 currencies.

Run from the repository root: .venv/bin/python bench/balances.py [--rebuild | --quick]
Starts its own PostgreSQL (devtools.localservices.LocalPostgres). The built cluster is kept in
bench/.cache/balances-pg (git-ignored) and reused by the next run, since building takes about a
minute on two cores; --rebuild starts from scratch. --quick: 50 users, 3 currencies on a
temporary cluster, the same steps in a few seconds (the suite runs it). The last line is
`hot_vs_uncached: <ratio>x`.
"""

import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.bulk import insert_select  # noqa: E402
from devtools.localservices import LocalPostgres, kept_postgres  # noqa: E402

CACHE_DIR = REPO / "bench" / ".cache" / "balances-pg"
BUILD_ID = "v2 users=10000 currencies=20 entries=1000000"
WORKERS = max(1, min(4, os.cpu_count() or 1))
FIGURES = ("hot_vs_uncached",)

CODES = (201, 202, 203, 204, 205, 206, 230)
# The full run; --quick: a few seconds on a temporary cluster, the same steps and lines.
FULL = dict(users=10_000, currencies=20, hot_reads=300_000, uncached_reads=1000, threads=200)
QUICK = dict(users=50, currencies=3, hot_reads=20_000, uncached_reads=100, threads=20)
SIZE = dict(FULL)


def pairs():  # each (user, currency) pair gets 5 entries
    return SIZE["users"] * SIZE["currencies"]


def first_user_account():  # ids 1..currencies are the wallets' 900 network accounts
    return SIZE["currencies"] + 1


def acc(u, c, k):
    """The account id of (user u, currency c, code index k), as SQL."""
    return f"({first_user_account()} + (({u}) * {SIZE['currencies']} + ({c})) * 7 + ({k}))"


# Entry j of a pair: 0 deposit 900 -> 201, 1: 201 -> 202, 2: 202 -> 230, 3: 201 -> 203,
# 4: 201 -> 204.
SOURCE_K = "CASE j WHEN 1 THEN 0 WHEN 2 THEN 1 WHEN 3 THEN 0 WHEN 4 THEN 0 END"
DEST_K = "CASE j WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 6 WHEN 3 THEN 2 WHEN 4 THEN 3 END"


def setup_rows():
    """Currencies, wallets and their 900 accounts through the ORM (ids 1..currencies)."""
    from django.db import connection

    from ledger.models import Account, Currency, Wallet

    n = SIZE["currencies"]
    Currency.objects.bulk_create(
        Currency(id=c + 1, code=f"C{c:02d}", name=f"currency {c}", crediting_threshold=3)
        for c in range(n)
    )
    Wallet.objects.bulk_create(
        Wallet(id=c + 1, name=f"wallet-{c}", currency_id=c + 1) for c in range(n)
    )
    Account.objects.bulk_create(
        Account(id=c + 1, currency_id=c + 1, code=900, wallet_id=c + 1) for c in range(n)
    )
    last_account = first_user_account() + pairs() * 7
    with connection.cursor() as cursor:
        for table, last in (("currency", n), ("wallet", n), ("account", last_account)):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('ledger_{table}', 'id'), {last})")


def accounts_sql(lo, hi):  # users lo..hi-1; the columns not named here come from the model
    from ledger.models import Account

    return insert_select(
        Account,
        {
            "id": acc("u", "c", "k"),
            "currency_id": "c + 1",
            "code": f"(ARRAY{list(CODES)})[k + 1]",
            "user_id": "'user-' || u",
        },
        f"""FROM generate_series({lo}, {hi - 1}) u,
                 generate_series(0, {SIZE["currencies"] - 1}) c, generate_series(0, 6) k""",
    )


def entries_sql(lo, hi):  # entries lo..hi-1, through the ledger's CHECKs, FKs and trigger
    from ledger.models import Transaction

    users, currencies = SIZE["users"], SIZE["currencies"]
    return insert_select(
        Transaction,
        {
            "currency_id": "c + 1",
            "source_id": f"CASE WHEN j = 0 THEN c + 1 ELSE {acc('u', 'c', SOURCE_K)} END",
            "destination_id": acc("u", "c", DEST_K),
            "amount": "CASE WHEN j = 0 THEN 100000000 + i ELSE 1000 * j + (i % 97) END",
            "kind": "CASE WHEN j = 0 THEN 'deposit' ELSE 'internal' END",
        },
        f"""FROM (SELECT i, i % {users} AS u, (i / {users}) % {currencies} AS c,
                         i / {pairs()} AS j
                  FROM generate_series({lo}, {hi - 1}) i) g""",
    )


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
    if "--quick" in sys.argv:
        SIZE.update(QUICK)
        pg = LocalPostgres().start()
        try:
            measure(pg, reuse=False)
        finally:
            pg.stop()
        return
    with kept_postgres(CACHE_DIR, BUILD_ID, rebuild="--rebuild" in sys.argv) as (pg, reuse):
        measure(pg, reuse=reuse)


def measure(pg, reuse):
    try:
        cache = prepare(pg, reuse)
        times = cold_loads(cache)
        hot = hot_reads(cache)
        uncached = uncached_reads()
        assert cache.stats()["loads"] == 1 + times  # the hot loop never loaded
        same_cold_user(cache)
        print(f"hot_vs_uncached: {hot / uncached:.0f}x")
    finally:
        try:
            from balances.cache import reset_cache

            reset_cache()
        except Exception:
            pass


def django_on(pg):
    import psycopg2

    os.environ.update(
        DATABASE_URL=pg.url_for("bench"),
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
    )
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    admin = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
    admin.autocommit = True
    cursor = admin.cursor()
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = 'bench'")
    if not cursor.fetchone():
        cursor.execute("CREATE DATABASE bench")
    admin.close()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(pg):
    """The ledger: rows in parallel connections (the per-row trigger work uses every core)."""
    from django.db import connection, transaction

    with transaction.atomic():
        setup_rows()
    dsn = f"host=127.0.0.1 port={pg.port} user=postgres dbname=bench"
    in_parallel(dsn, [accounts_sql(lo, hi) for lo, hi in slices(SIZE["users"], WORKERS)])
    in_parallel(dsn, [entries_sql(lo, hi) for lo, hi in slices(pairs() * 5, WORKERS)])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def prepare(pg, reuse):
    """Django on the bench database, the ledger built (or reused), the cache opened."""
    django_on(pg)
    from django.db import connection

    from balances import cache as cache_module

    started = time.perf_counter()
    if not reuse:
        build(pg)
        if SIZE == FULL:
            (CACHE_DIR / "BUILT").write_text(BUILD_ID)
    built = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_transaction")
        entries = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(DISTINCT user_id) FROM ledger_account WHERE user_id IS NOT NULL"
        )
        users = cursor.fetchone()[0]
    how = "reused" if reuse else f"built in {built:.1f} s with {WORKERS} connections"
    currencies = SIZE["currencies"]
    print(
        f"ledger: {entries:,} entries, {users:,} users, {currencies} currencies, "
        f"{users * currencies * 7:,} user accounts; {how}"
    )
    assert entries == pairs() * 5 and users == SIZE["users"]
    cache = cache_module.get_cache()
    print(f"cache: cross-process mode {cache.mode}, max users {cache.max_users}")
    cache.get_user(f"user-{SIZE['users'] - 1}")  # opens the connection: not a cold load timed
    return cache


def cold_loads(cache):
    """One user with every currency x 7 accounts each time, counting the queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries = [], []
    for u in range(10, 40):
        with CaptureQueriesContext(connection) as captured:
            t0 = time.perf_counter()
            loaded = cache.get_user(f"user-{u}")
            times.append(time.perf_counter() - t0)
        queries.append(len(captured))
        assert len(loaded) == SIZE["currencies"] and all(len(v) == 7 for v in loaded.values())
    print(
        f"cold load of one user ({SIZE['currencies']} currencies x 7 accounts): median "
        f"{statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms over "
        f"{len(times)} users; queries per load: {sorted(set(queries))}"
    )
    return len(times)


SPOT = ("user-23", "C01", 201)


def hot_reads(cache):
    """The cache agrees with the uncached query, then hot reads from one thread; best of 5
    rounds (the machine is shared)."""
    from django.db import connection

    user, cur, code = SPOT
    with connection.cursor() as cursor:
        for c in {"C00", cur, f"C{SIZE['currencies'] - 1:02d}"}:
            for k in CODES:
                cursor.execute(UNCACHED_SQL, [user, c, k])
                assert cursor.fetchone()[0] == cache.get_balance(user, c, k), (c, k)
    get_balance, rates, n = cache.get_balance, [], SIZE["hot_reads"]
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            get_balance(user, cur, code)
        rates.append(n / (time.perf_counter() - t0))
    hot = max(rates)
    print(
        f"hot get_balance, one thread: {hot:,.0f} reads/s ({1e6 / hot:.2f} us/read; "
        f"rounds {', '.join(f'{r / 1e6:.2f}M' for r in rates)})"
    )
    return hot


def uncached_reads():
    """The same balance with the uncached query (one round trip, index-only sums)."""
    from django.db import connection

    rates, m = [], SIZE["uncached_reads"]
    with connection.cursor() as cursor:
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(m):
                cursor.execute(UNCACHED_SQL, list(SPOT))
                cursor.fetchone()
            rates.append(m / (time.perf_counter() - t0))
    uncached = max(rates)
    print(
        f"uncached query for the same balance: {uncached:,.0f} reads/s ({1e6 / uncached:.1f} "
        f"us/read; rounds {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    return uncached


def same_cold_user(cache):
    """Many threads ask for the same cold user at once: one database load."""
    from django.db import connections

    loads_before, real_loader, calls, answers = cache.stats()["loads"], cache.loader, [], []
    count = SIZE["threads"]

    def counting_loader(user_id):
        calls.append(user_id)
        return real_loader(user_id)

    def ask():
        try:
            barrier.wait(30)
            answers.append(cache.get_balance(f"user-{SIZE['users'] - 8}", "C00", 201))
        finally:
            connections.close_all()

    cache.loader = counting_loader
    barrier = threading.Barrier(count)
    threads = [threading.Thread(target=ask) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    s = cache.stats()
    print(
        f"{count} threads, same cold user: {len(calls)} database load(s) "
        f"({s['loads'] - loads_before} counted by the cache, {s['waits']} waited), "
        f"{len(answers)} answers, distinct values {len(set(answers))}"
    )
    assert len(calls) == 1 and len(answers) == count and len(set(answers)) == 1


if __name__ == "__main__":
    main()
