"""The balances query through gunicorn on PostgreSQL, side by side with a trivial view.

Run from the repository root: .venv/bin/python bench/graphql_http.py [--quick]
Starts its own PostgreSQL and gunicorn (production settings and flags, as `manage.py serve`
starts it: WEB_WORKERS=2 sync workers, the access log written) with one extra URL, a view that
does nothing behind the same middleware (devtools/settings_bench.py). Client processes keep
their connections alive where the server allows it (gunicorn's sync workers close after each
response, as in production) and send the same requests as fast as answered. Each round measures
the trivial view, then the balances query with an API token on a hot cache, the clients going
round 100 users. Prints each
endpoint's rate, p50, p99 and the workers' CPU per request (from /proc: a figure the other
load on a shared machine moves less than the rate), then `graphql_vs_trivial: <ratio>` (target
>= 0.60) and `graphql_p99_ms: <ms>` (target < 10).
"""

import itertools
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.localservices import LocalPostgres, free_port  # noqa: E402

QUICK = "--quick" in sys.argv
CLIENTS = 4
SECONDS = 0.2 if QUICK else 4.0
ROUNDS = 1 if QUICK else 3
CURRENCIES = ("BTC", "LTC", "USDT")
USERS = 100  # the clients go round them: each request asks for another user than the last
QUERY = (
    'query { user(id: "%s") { currencies { id enabled balance advancedTradingBalance '
    "advancedTradingLockedBalance lockedBalance withdrawLockedBalance stakingLockedBalance "
    "activeStakingBalance } } }"
)


# Its figure lines; its quick mode runs in tests/test_bench_graphql_http.py.
FIGURES = ("graphql_vs_trivial", "graphql_p99_ms")


def request_bytes(path, token=None, body=None):
    lines = [
        f"{'POST' if body else 'GET'} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "X-Forwarded-Proto: https",
        "Connection: keep-alive",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def read_response(sock, buf=b""):
    """(status, body, keep_alive, leftover) of one HTTP/1.1 response with a Content-Length."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        rest += chunk
    keep = headers.get("connection", "").lower() != "close"
    return int(lines[0].split()[1]), rest[:length], keep, rest[length:]


def client(port, payloads, seconds, out):
    """One client: as many requests as answered for `seconds`, going round `payloads`; its
    latencies to `out`."""
    latencies, errors, sock, until = [], 0, None, time.perf_counter() + seconds
    turn = itertools.cycle(payloads)
    while time.perf_counter() < until:
        payload = next(turn)
        started = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(payload)
            status, _, keep, _ = read_response(sock)
        except OSError:
            errors, sock = errors + 1, None
            continue
        latencies.append(time.perf_counter() - started)
        errors += status != 200
        if not keep:
            sock.close()
            sock = None
    out.put((latencies, errors))


def server_cpu(master):
    """CPU seconds used so far by gunicorn's workers (the master's children)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def load(port, payload, seconds, master=None):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=client, args=(port, payload, seconds, out)) for _ in range(CLIENTS)]
    cpu = server_cpu(master) if master else 0.0
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    cpu = (server_cpu(master) - cpu) if master else 0.0
    for p in procs:
        p.join(10)
    latencies = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    return {
        "rate": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
        "n": len(latencies),
        "cpu_ms": cpu * 1000 / max(1, len(latencies)),  # the workers' CPU per request
    }


def prepare(pg):
    """A user with a balance in each currency and an API token; migrates a database of its own."""
    import django

    if pg is not None:
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE bench")
        admin.close()
    django.setup()
    from django.core.management import call_command

    from balances.models import ApiToken
    from ledger import services
    from ledger.models import Account, Currency, Wallet

    if pg is not None:
        call_command("migrate", verbosity=0)
    for code in CURRENCIES:
        cur = Currency.objects.create(code=code, name=code, decimals=8)
        wallet = Wallet.objects.create(
            name=f"{code}-wallet", currency=cur, backend="bitcoind", backend_settings={}
        )
        network = services.system_account(wallet, Account.Code.NETWORK)
        for u in range(USERS):
            account = services.user_account(f"user-{u}", cur, 201)
            services.post(network, account, 150_000_000 + u, "deposit")
    return ApiToken.issue("bench")[1]


def start_gunicorn(env, tmp):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "cryptoadmin.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        env["WEB_WORKERS"],
        "--access-logfile",
        str(Path(tmp) / "access.log"),
        "--graceful-timeout",
        "20",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=open(Path(tmp) / "gunicorn.log", "w"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start: see " + str(Path(tmp) / "gunicorn.log"))


def main():
    """--database-url URL: an existing migrated, empty database (the suite's) instead of a
    PostgreSQL of its own."""
    given = sys.argv[sys.argv.index("--database-url") + 1] if "--database-url" in sys.argv else None
    pg = None if given else LocalPostgres().start()
    tmp = tempfile.mkdtemp(prefix="cryptoadmin-bench-http-")
    env = dict(
        os.environ,
        DATABASE_URL=given or pg.url_for("bench"),
        DJANGO_SETTINGS_MODULE="devtools.settings_bench",
        SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        NODE_HOSTS="127.0.0.1",  # no node here; keeps the deploy check quiet
        BEHIND_TLS_PROXY="1",
        STATIC_ROOT=tmp,
        LOG_LEVEL="WARNING",
        WEB_WORKERS=os.environ.get("WEB_WORKERS", "2"),
    )
    os.environ.update(env)
    proc = None
    try:
        token = prepare(pg)
        proc, port = start_gunicorn(env, tmp)
        run(port, token, proc.pid)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
            try:
                proc.wait(30)  # reaped here: a zombie would look alive to a pid check
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        from django.db import connections

        connections.close_all()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(port, token, master):
    trivial = [request_bytes("/bench/trivial")]
    graphql = [
        request_bytes("/graphql", token, json.dumps({"query": QUERY % f"user-{u}"}).encode())
        for u in range(USERS)
    ]
    for payload in (trivial, graphql):  # each worker: connection, caches, documents
        load(port, payload, 0.1 if QUICK else 1.5)
    print(
        f"gunicorn {os.environ['WEB_WORKERS']} sync workers, {CLIENTS} client processes, "
        f"{SECONDS:g} s per measurement, {ROUNDS} round(s), nproc {os.cpu_count()}"
    )
    best = {}
    for i in range(ROUNDS):
        for name, payload in (("trivial view", trivial), ("graphql balances", graphql)):
            r = load(port, payload, SECONDS, master)
            print(
                f"round {i + 1} {name}: {r['rate']:,.0f} req/s, p50 {r['p50']:.2f} ms, "
                f"p99 {r['p99']:.2f} ms, {r['n']} requests, {r['errors']} errors, "
                f"server CPU {r['cpu_ms']:.2f} ms per request"
            )
            assert r["errors"] == 0, f"{name}: {r['errors']} failed requests"
            if name not in best or r["rate"] > best[name]["rate"]:
                best[name] = r
    t, g = best["trivial view"], best["graphql balances"]
    print(f"trivial view (best round): {t['rate']:,.0f} req/s, p99 {t['p99']:.2f} ms")
    print(f"graphql balances (best round): {g['rate']:,.0f} req/s, p99 {g['p99']:.2f} ms")
    print(
        f"server CPU per request (best rounds): trivial {t['cpu_ms']:.2f} ms, graphql "
        f"{g['cpu_ms']:.2f} ms: graphql_vs_trivial by CPU {t['cpu_ms'] / g['cpu_ms']:.2f}"
    )
    print(f"graphql_vs_trivial: {g['rate'] / t['rate']:.2f}")
    print(f"graphql_p99_ms: {g['p99']:.2f}")


if __name__ == "__main__":
    main()
