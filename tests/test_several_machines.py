"""Several machines, proven with real processes: two web servers (gunicorn, one worker each,
as on two machines) and two django-q2 clusters, one PostgreSQL, one node, traffic for a
bounded time. Each due schedule runs once per interval, each broadcast is sent once, each
deposit is credited once, and a balance read through either web worker reflects a write
made through the other within the cache's staleness bound."""

import json
import re
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from balances.models import ApiToken
from broadcasts.models import Broadcast, OutgoingTransaction
from ledger import services as ledger
from ledger.models import NetworkTransaction, Transaction
from ledger.money import to_units
from tests.prodserver import ProxiedBrowser, production_env, start_serve, stop
from tests.support import PYTHON, REPO, funded_wallet, totp_device, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.node]
PASSWORD = "several machines password 7"
# django-q2's guard calls the scheduler every 30 s of each cluster's life (not configurable).
SCHEDULER_PASS = 30
STALENESS = 2.0  # BALANCE_CACHE_MAX_STALENESS's default, plus the watchdog's 50 ms below


def graphql_balance(browser, token, user="alice"):
    query = (
        f'query {{ user(id: "{user}") {{ currencies {{ id balance withdrawLockedBalance }} }} }}'
    )
    response = browser.post(
        "/graphql",
        data=json.dumps({"query": query}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    [row] = [c for c in response.json()["data"]["user"]["currencies"] if c["id"] == "BTC"]
    return to_units(row["balance"], 8), to_units(row["withdrawLockedBalance"], 8)


def queue_through(browser, wallet, address, amount):
    form = browser.get("/admin/broadcasts/outgoingtransaction/queue/")
    assert form.status_code == 200, form.status_code
    response = browser.post(
        "/admin/broadcasts/outgoingtransaction/queue/",
        {
            "csrfmiddlewaretoken": browser.csrf_token(form.text),
            "user_id": "alice",
            "wallet": wallet.pk,
            "address": address,
            "amount": amount,
            "label": "several machines",
        },
    )
    assert response.status_code == 302, re.sub(r"\s+", " ", response.text)[:1500]


def watch_for_running(logs) -> dict:
    """Records, in a thread, when each cluster's log first says it is running: its first
    scheduler pass comes SCHEDULER_PASS seconds later."""
    seen = {}

    def watch():
        deadline = time.monotonic() + 120
        while len(seen) < len(logs) and time.monotonic() < deadline:
            for log in logs:
                if log not in seen and "running." in log.read_text():
                    seen[log] = time.monotonic()
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    return seen


def seen_within(read, expected, bound):
    """Seconds until `read()` returned `expected`; fails after `bound`."""
    started = time.monotonic()
    while (value := read()) != expected:
        assert time.monotonic() - started < bound, (value, expected)
        time.sleep(0.02)
    return time.monotonic() - started


def test_it_runs_on_two_web_workers_and_two_clusters_with_one_database(
    btc, fresh_node, child_env, tmp_path, django_user_model
):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django_q.models import Schedule, Task

    server = fresh_node()
    wallet, alice = funded_wallet(btc, server)
    ops = django_user_model.objects.create(
        username="ops",
        is_staff=True,
        is_superuser=True,
        password=PBKDF2PasswordHasher().encode(PASSWORD, "salt5678"),
    )
    _, code = totp_device(ops)
    _, token = ApiToken.issue("several machines")
    addresses = {
        user: ledger.new_receiving_address(wallet, user).address
        for user in ("bob", "carol", "dave")
    }

    env = production_env(child_env, tmp_path)
    (tmp_path / "static").mkdir()
    clusters = [
        subprocess.Popen(
            [PYTHON, "manage.py", "qcluster"],
            cwd=REPO,
            env=env,
            start_new_session=True,
            stdout=open(tmp_path / f"cluster{i}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for i in (1, 2)
    ]
    running = watch_for_running([tmp_path / f"cluster{i}.log" for i in (1, 2)])
    webs = []
    try:
        webs = [
            # Two machines' web tiers on one host: one node listener would hold the socket.
            start_serve(
                env,
                tmp_path / f"web{i}.log",
                "--no-scheduler",
                "--no-listener",
                "--web-workers",
                "1",
            )
            for i in (1, 2)
        ]
        a, b = (ProxiedBrowser(base) for _, base in webs)
        a.log_in("ops", PASSWORD, code=code)
        b.cookies = dict(a.cookies)  # one session, stored in the shared database

        # Cross-worker reads: B's cache is warm, A writes, B sees it (and the other way round).
        before = graphql_balance(b, token)
        assert graphql_balance(a, token) == before
        payees = [server.rpc("getnewaddress") for _ in range(4)]
        queue_through(a, wallet, payees[0], "0.01")
        lag_ab = seen_within(
            lambda: graphql_balance(b, token), (before[0] - 1_000_000, 1_000_000), STALENESS + 0.5
        )
        queue_through(b, wallet, payees[1], "0.02")
        lag_ba = seen_within(
            lambda: graphql_balance(a, token), (before[0] - 3_000_000, 3_000_000), STALENESS + 0.5
        )
        print(f"cross-worker lag: A->B {lag_ab * 1000:.0f} ms, B->A {lag_ba * 1000:.0f} ms")

        # Every schedule is due now; the clusters' first scheduler passes come ~30 s after start.
        started = timezone.now()
        Schedule.objects.update(next_run=started - timedelta(seconds=1))
        due = dict(Schedule.objects.values_list("name", "minutes"))

        # Traffic until both clusters have made their first scheduler pass and its tasks ran.
        deposits = []
        for i, user in enumerate(["bob", "carol", "dave"] * 2):
            deposits.append(server.rpc("sendtoaddress", addresses[user], f"0.{i + 1}"))
        queue_through(a if len(payees) % 2 else b, wallet, payees[2], "0.03")
        queue_through(b, wallet, payees[3], "0.04")
        server.generate(3)  # past the crediting threshold (2) before the poll runs

        def all_ran():
            done = set(Task.objects.filter(group__in=due).values_list("group", flat=True))
            return done == set(due)

        wait_until(
            all_ran, timeout=SCHEDULER_PASS + 60, interval=0.5, what="every due schedule to run"
        )
        # Both clusters have made their first pass (the later one must have found nothing due).
        wait_until(lambda: len(running) == 2, timeout=30, what="both clusters running")
        time.sleep(max(0.0, max(running.values()) + SCHEDULER_PASS + 3 - time.monotonic()))

        runs = Counter(Task.objects.filter(group__in=due).values_list("group", flat=True))
        assert runs == Counter({name: 1 for name in due}), runs
        for s in Schedule.objects.filter(name__in=due):
            assert s.next_run > timezone.now() + timedelta(minutes=due[s.name]) - timedelta(
                seconds=60
            ), s.name
        failed = list(
            Task.objects.filter(group__in=due, success=False).values_list("group", "result")
        )
        assert failed == []

        # Each broadcast sent once: one broadcast of the four withdrawals, one send on the node.
        [broadcast] = Broadcast.objects.all()
        assert broadcast.state == Broadcast.State.BROADCASTED and broadcast.output_count == 4
        assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {"broadcasted"}
        sends = [
            e
            for e in server.rpc("listtransactions", "*", 1000)
            if e["category"] == "send" and e["address"] in payees
        ]
        assert Counter(e["address"] for e in sends) == Counter(payees)
        assert {e["txid"] for e in sends} == {broadcast.txid}

        # Each deposit credited once.
        rows = NetworkTransaction.objects.filter(type="deposit")
        assert set(rows.values_list("txid", flat=True)) == set(deposits)
        credits = Counter(
            Transaction.objects.filter(kind="deposit").values_list(
                "network_transaction__txid", flat=True
            )
        )
        assert credits == Counter({txid: 1 for txid in deposits})
        for user, n in (("bob", 1 + 4), ("carol", 2 + 5), ("dave", 3 + 6)):
            assert ledger.balance(ledger.user_account(user, btc)) == n * 10_000_000
        # And both web workers agree on it.
        assert (
            graphql_balance(a, token, "carol")
            == graphql_balance(b, token, "carol")
            == (70_000_000, 0)
        )
    finally:
        # Every process is stopped even if one of them does not stop in time.
        errors = []
        for proc in [proc for proc, _ in webs] + clusters:
            try:
                stop(proc)
            except Exception as exc:
                errors.append(exc)
        assert errors == []
    logs = "".join((tmp_path / f"cluster{i}.log").read_text() for i in (1, 2))
    assert logs.count("running.") == 2, logs[-3000:]
