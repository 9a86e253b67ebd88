"""Webhook delivery benchmark on PostgreSQL: events per second to one local endpoint, and the
time from an event's commit to the receiver's 2xx (p50, p99).

Run from the repository root: .venv/bin/python bench/events.py [--quick]
Starts its own PostgreSQL, a receiver process that verifies every request with
`standardwebhooks` (tests/webhook_receiver.py) and one `manage.py deliver_events`, all on
loopback; stops them by process id at the end. Two phases: a burst of --burst events written
as fast as one writer commits them (throughput), then --paced events one per transaction every
--gap seconds (latency without a queue). Figure lines: `events_per_second: N`,
`commit_to_2xx_p50_ms: N`, `commit_to_2xx_p99_ms: N`.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.localservices import LocalPostgres, free_port  # noqa: E402

FIGURES = ("events_per_second", "commit_to_2xx_p50_ms", "commit_to_2xx_p99_ms")


def environment(database_url):
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
        DEBUG="0",
        ALLOWED_HOSTS="testserver",
        WEBHOOK_HOSTS="127.0.0.1",
        NODE_HOSTS="127.0.0.1",  # no node here; keeps the deploy check quiet
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    env.pop("CRYPTOADMIN_FAULT", None)
    return env


def received(outfile: Path) -> dict:
    """{object id: receipt time} of every verified request answered 2xx."""
    out = {}
    if outfile.exists():
        for line in outfile.read_text().splitlines():
            record = json.loads(line)
            if 200 <= record["status"] < 300:
                out.setdefault(record["body"]["object"]["id"], record["at"])
    return out


def wait_for(outfile, keys, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = received(outfile)
        if all(k in got for k in keys):
            return got
        time.sleep(0.2)
    got = received(outfile)
    raise SystemExit(f"only {sum(k in got for k in keys)} of {len(keys)} events arrived")


def write_burst(outbox, transaction, prefix, count, per_txn=10):
    committed = {}
    for start in range(0, count, per_txn):
        keys = [f"{prefix}{n}" for n in range(start, min(count, start + per_txn))]
        with transaction.atomic():
            outbox.emit_many([outbox.Emitted("transfer.posted", "transfer", k) for k in keys])
        now = time.time()
        committed.update((k, now) for k in keys)
    return committed


def write_paced(outbox, transaction, prefix, count, gap):
    committed = {}
    for n in range(count):
        key = f"{prefix}{n}"
        with transaction.atomic():
            outbox.emit("transfer.posted", "transfer", key)
        committed[key] = time.time()
        time.sleep(gap)
    return committed


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(args, pg, workdir):
    import psycopg2

    admin = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE bench")
    admin.close()
    env = environment(pg.url_for("bench"))
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from events.models import WebhookEndpoint
    from ledger import outbox

    call_command("migrate", verbosity=0)
    port = free_port()
    endpoint = WebhookEndpoint.objects.create(url=f"http://127.0.0.1:{port}/hook")
    outfile = workdir / "received.jsonl"
    children = []
    try:
        start_children(children, env, port, endpoint.secret, outfile)
        measure(args, outbox, transaction, outfile)
    finally:
        stop_children(children)


def start_children(children, env, port, secret, outfile):
    """The receiver, then the dispatcher, each waited for (its first line)."""
    for cmd, ready in (
        (["tests/webhook_receiver.py", str(port), secret, str(outfile)], "listening"),
        (["manage.py", "deliver_events"], "delivering events"),
    ):
        child = subprocess.Popen(
            [sys.executable, *cmd], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        children.append(child)
        assert child.stdout.readline().strip() == ready


def stop_children(children):
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def measure(args, outbox, transaction, outfile):
    started = time.time()
    committed = write_burst(outbox, transaction, "burst-", args.burst)
    got = wait_for(outfile, committed, timeout=60 + args.burst / 50)
    span = max(got[k] for k in committed) - started
    print(f"burst: {args.burst} events, written in {max(committed.values()) - started:.2f} s")
    print(f"events_per_second: {args.burst / span:.0f}")
    paced = write_paced(outbox, transaction, "paced-", args.paced, args.gap)
    got = wait_for(outfile, paced, timeout=60)
    latencies = [(got[k] - paced[k]) * 1000 for k in paced]
    print(f"paced: {args.paced} events, one every {args.gap * 1000:.0f} ms")
    print(f"commit_to_2xx_p50_ms: {statistics.median(latencies):.1f}")
    print(f"commit_to_2xx_p99_ms: {percentile(latencies, 0.99):.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the suite runs this)")
    parser.add_argument("--burst", type=int, default=None, help="events in the burst")
    parser.add_argument("--paced", type=int, default=None, help="events written one by one")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between paced events")
    args = parser.parse_args()
    args.burst = args.burst or (200 if args.quick else 10_000)
    args.paced = args.paced or (20 if args.quick else 500)
    pg = LocalPostgres().start()
    try:
        run(args, pg, pg.base)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
