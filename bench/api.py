"""Benchmark of /api/v1/ through gunicorn (`manage.py serve`, two workers) on PostgreSQL:
single transfers per second, transfers per second in batches of 1,000, withdrawal requests per
second, with p50/p99 latency of each, CLIENTS concurrent clients on this machine.

    .venv/bin/python bench/api.py            # the full run (figures for docs/benchmarks.md)
    .venv/bin/python bench/api.py --quick    # a few requests of each: that it runs (the suite)

Starts its own PostgreSQL and regtest bitcoind unless given --database-url (a migrated
database, e.g. the test suite's) and --node-url. Each figure line reads
`<name>: <per second>/s p50 <ms> ms p99 <ms> ms (<n> requests)`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.localservices import LocalBitcoind, LocalPostgres, free_port  # noqa: E402

FIGURES = ("single_transfers", "batch_transfers", "withdrawal_requests")
CLIENTS = 4
FULL = {"single": 3000, "batches": 20, "withdrawals": 600}
QUICK = {"single": 20, "batches": 1, "withdrawals": 5}
USERS = 200


def environment(database_url: str) -> dict:
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        BEHIND_TLS_PROXY="1",
        NODE_HOSTS="127.0.0.1",
        API_RATE_LIMIT="",
        # Persistent database connections, as a production deployment sets them.
        DB_CONN_MAX_AGE="60",
        CRYPTOADMIN_FAULT="",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )


def prepare(node_url: str) -> tuple[str, str]:
    """A BTC wallet on the node, USERS funded users, a token with every scope; returns the
    token and an address to withdraw to."""
    from balances.models import SCOPES, ApiToken
    from ledger import services
    from ledger.models import Account, Currency, Transaction, Wallet

    currency, _ = Currency.objects.get_or_create(code="BTC", defaults={"name": "Bitcoin"})
    wallet = Wallet.objects.create(
        name=f"bench-{uuid.uuid4().hex[:8]}", currency=currency, backend_settings={"url": node_url}
    )
    importer = services.system_account(wallet, Account.Code.IMPORT)
    accounts = [services.user_account(f"bench-{u}", currency) for u in range(USERS)]
    services.post_many(
        [
            Transaction(
                currency=currency, source=importer, destination=a, amount=10**12, kind="import"
            )
            for a in accounts
        ]
    )
    _, raw = ApiToken.issue("bench", scopes=list(SCOPES))
    return raw, wallet.get_backend().new_address("bench")


def start_server(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--web-workers", "2"]
        + ["--no-scheduler"],
        cwd=REPO,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            requests.get(
                base + "/api/v1/openapi.json",
                headers={"X-Forwarded-Proto": "https"},
                timeout=5,
                allow_redirects=False,
            ).raise_for_status()
            return proc, base
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise SystemExit(f"serve did not answer: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    from ops.processes import kill_group, wait_group_gone

    proc.terminate()
    try:
        proc.wait(timeout=40)
    finally:
        if not wait_group_gone(proc.pid, 5):
            kill_group(proc.pid)


def run(base: str, token: str, path: str, bodies: list[dict]) -> tuple[float, list[float]]:
    """POST every body (each with a new Idempotency-Key) from CLIENTS threads; wall seconds and
    each request's latency. Any answer but 201 stops the benchmark."""
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https"}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(enumerate(bodies))

    def client():
        session = requests.Session()
        while True:
            with lock:
                if not queue or failures:
                    return
                _, body = queue.pop()
            start = time.perf_counter()
            answer = session.post(
                base + path,
                json=body,
                headers=dict(headers, **{"Idempotency-Key": str(uuid.uuid4())}),
                timeout=120,
            )
            elapsed = time.perf_counter() - start
            with lock:
                if answer.status_code != 201:
                    failures.append(f"{answer.status_code} {answer.text[:300]}")
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{path}: {failures[0]}")
    return wall, latencies


def report(name: str, wall: float, latencies: list[float], per_request: int = 1) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rate = len(latencies) * per_request / wall
    print(
        f"{name}: {rate:.0f}/s p50 {statistics.median(ordered) * 1000:.1f} ms "
        f"p99 {p99 * 1000:.1f} ms ({len(latencies)} requests)",
        flush=True,
    )


def move(i: int, amount: str = "0.00000001") -> dict:
    a, b = i % USERS, (i * 7 + 1) % USERS
    b = b if b != a else (a + 1) % USERS
    return {
        "from": {"user": f"bench-{a}", "account": "balance"},
        "to": {"user": f"bench-{b}", "account": "balance"},
        "amount": amount,
    }


def measure(base: str, token: str, address: str, sizes: dict) -> None:
    singles = [{"currency": "BTC", "transfers": [move(i)]} for i in range(sizes["single"])]
    report("single_transfers", *run(base, token, "/api/v1/transfers", singles))
    batches = [
        {"currency": "BTC", "transfers": [move(b * 1000 + i) for i in range(1000)]}
        for b in range(sizes["batches"])
    ]
    report("batch_transfers", *run(base, token, "/api/v1/transfers", batches), per_request=1000)
    withdrawals = [
        {"user": f"bench-{i % USERS}", "currency": "BTC", "address": address, "amount": "0.0001"}
        for i in range(sizes["withdrawals"])
    ]
    report("withdrawal_requests", *run(base, token, "/api/v1/withdrawals", withdrawals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few requests of each")
    parser.add_argument("--database-url", help="a migrated PostgreSQL database to use")
    parser.add_argument("--node-url", help="a regtest bitcoind's RPC URL to use")
    args = parser.parse_args()
    pg = None if args.database_url else LocalPostgres().start()
    node = None if args.node_url else LocalBitcoind().start()
    proc = None
    try:
        env = environment(args.database_url or pg.url)
        os.environ.update(env)
        import django

        django.setup()
        if pg is not None:
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
        token, address = prepare(args.node_url or node.url)
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-api-{os.getpid()}.log"
        proc, base = start_server(env, log)
        measure(base, token, address, QUICK if args.quick else FULL)
    finally:
        if proc is not None:
            stop_server(proc)
        if node is not None:
            node.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
