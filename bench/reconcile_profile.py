"""Where the full reconciliation's time goes, on admin_scale.py's cached large dataset.

Run from the repository root, after admin_scale.py has built its cache:
.venv/bin/python bench/reconcile_profile.py [--smoke] [--size small|large] [--rounds N]
.venv/bin/python bench/reconcile_profile.py --quick   (a tiny dataset of its own, in seconds)

Runs the task "Reconcile now" queues (ledger.reconcile.reconcile_wallet_task on wallet 1, the
node double answering 100,000 listreceivedbyaddress rows, as in admin_scale.py) N times (3)
for the median, then once under cProfile, and prints the split: the node read
(reconcile.node_figures: the HTTP round trip, the JSON parse, the rows built), the
comparison's SQL (cursor execute/fetch inside compare), the rest of compare, and the rest of
the task (the recording UPDATE, the history entry). The POST itself only queues the task.
"""

import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import admin_scale  # noqa: E402

from devtools.localservices import LocalPostgres, kept_postgres  # noqa: E402

FIGURES = ("reconcile_task_ms",)


def main():
    if "--quick" in sys.argv:
        return quick()
    cache = admin_scale.CACHE_DIR
    if "--smoke" in sys.argv:
        cache = cache.with_name("admin-scale-smoke")
    size = sys.argv[sys.argv.index("--size") + 1] if "--size" in sys.argv else "large"
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    if not (cache / "BUILT").exists():
        sys.exit(f"no built cache at {cache}: run bench/admin_scale.py first")
    with kept_postgres(cache, admin_scale.BUILD_ID) as (pg, reuse):
        assert reuse
        run(pg, size, rounds)


def quick():
    """admin_scale.py's large dataset at 1/1,000 on a temporary cluster, one round: seconds."""
    import psycopg2

    admin_scale.SIZES["large"] = {k: v // 1000 for k, v in admin_scale.SIZES["large"].items()}
    admin_scale.RECEIVED_ROWS = 1000
    pg = LocalPostgres().start()
    try:
        admin = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE large")
        admin.close()
        admin_scale.bench_environment(pg.url_for("large"))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            admin_scale.build(cursor, "large")
        admin_scale.outgoing(admin_scale.SIZES["large"])
        run(pg, "large", 1)
    finally:
        from django.db import connections

        from balances.cache import reset_cache

        reset_cache()  # its LISTEN connection, before the cluster goes
        connections.close_all()
        pg.stop()


def run(pg, size, rounds):
    admin_scale.bench_environment(pg.url_for(size))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from ledger.models import Wallet

    call_command("migrate", verbosity=0)  # as admin_scale.py does: the cache may predate one
    with connection.cursor() as cursor:
        received = admin_scale.received_rows(cursor)
    double = admin_scale.node_double(received)
    try:
        Wallet.objects.update(backend_settings={"url": double.url})
        user, _ = get_user_model().objects.get_or_create(
            username="bench", defaults=dict(is_staff=True, is_superuser=True)
        )
        times = timed(size, rounds, user)
        profiled(user)
        print(f"reconcile_task_ms: {statistics.median(times):.0f}")
    finally:
        double.stop()


def timed(size, rounds, user) -> list[float]:
    """The task `rounds` times, in ms, with the queries of the last."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ledger.reconcile import reconcile_wallet_task

    times = []
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            t = time.perf_counter()
            reconcile_wallet_task(1, user.pk)
            times.append((time.perf_counter() - t) * 1000)
    load = os.getloadavg()
    print(
        f"{size}: reconcile task median of {rounds}: {statistics.median(times):.0f} ms "
        f"({', '.join(f'{t:.0f}' for t in times)}), {len(captured)} queries; "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    return times


def profiled(user):
    """The task once under cProfile: the split of its time, then the top functions."""
    from ledger.reconcile import reconcile_wallet_task

    profile = cProfile.Profile()
    t = time.perf_counter()
    profile.enable()
    reconcile_wallet_task(1, user.pk)
    profile.disable()
    total = (time.perf_counter() - t) * 1000
    stats = pstats.Stats(profile)
    print(f"under cProfile: {total:.0f} ms (profiling adds its own overhead)")
    for name, ms in breakdown(stats):
        print(f"  {name}: {ms:.0f} ms")
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)


def cumulative(stats, filename_end, function):
    for (filename, _, name), (_, _, _, ct, _) in stats.stats.items():
        if filename.endswith(filename_end) and name == function:
            return ct * 1000
    return 0.0


def breakdown(stats):
    node = cumulative(stats, "ledger/reconcile.py", "node_figures")
    compare = cumulative(stats, "ledger/reconcile.py", "compare")
    # Every query the comparison runs goes through Django's cursor wrapper.
    sql = cumulative(stats, "django/db/backends/utils.py", "_execute") + sum(
        cumulative(stats, "django/db/backends/utils.py", f) for f in ("fetchall", "fetchone")
    )
    task = cumulative(stats, "ledger/reconcile.py", "reconcile_wallet_task")
    return [
        ("node read (node_figures: round trip, JSON parse, rows built)", node),
        ("SQL of the whole task (execute + fetch)", sql),
        ("compare, SQL included", compare),
        ("whole task", task),
        ("rest of the task (outside node_figures and compare)", task - node - compare),
    ]


if __name__ == "__main__":
    main()
