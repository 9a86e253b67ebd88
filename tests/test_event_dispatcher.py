"""`manage.py deliver_events` as real processes, against a receiver process that verifies every
request with `standardwebhooks`: nothing lost whatever the receiver or the dispatcher does,
duplicates only with the same webhook-id, two dispatchers never send one attempt twice."""

import json
import signal
import subprocess

import pytest
from django.db.models import Count
from django.utils import timezone

from devtools.localservices import free_port
from events.models import Attempt, Delivery, Event, WebhookEndpoint
from ledger import outbox
from tests.support import PYTHON, REPO, manage_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class ReceiverProcess:
    def __init__(self, port, secret, outfile):
        self.port, self.secret, self.outfile, self.proc = port, secret, outfile, None

    def start(self, *mode):
        self.stop()
        self.proc = subprocess.Popen(
            [PYTHON, "tests/webhook_receiver.py", str(self.port), self.secret, str(self.outfile)]
            + list(mode),
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "listening"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def records(self):
        if not self.outfile.exists():
            return []
        return [json.loads(line) for line in self.outfile.read_text().splitlines()]


@pytest.fixture
def receiver(tmp_path):
    port = free_port()
    endpoint = WebhookEndpoint.objects.create(url=f"http://127.0.0.1:{port}/hook")
    server = ReceiverProcess(port, endpoint.secret, tmp_path / "got.jsonl")
    server.endpoint = endpoint
    yield server
    server.stop()


@pytest.fixture
def dispatchers(child_env):
    started = []

    def start(*args, timeout="1"):
        env = dict(child_env, WEBHOOK_TIMEOUT=timeout, WEBHOOK_ENDPOINT_CONCURRENCY="4")
        proc = manage_process(env, "deliver_events", "--poll", "0.5", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def emit(n, prefix="d"):
    for k in range(n):
        outbox.emit("deposit.seen", "deposit", f"{prefix}{k}")


def every_delivery_tried(outcome):
    tried = Attempt.objects.filter(outcome=outcome).values("delivery").distinct().count()
    return tried == Delivery.objects.count()


def make_due():
    """The retry schedule's waits (5 s, 5 min...) passed at once."""
    Delivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())


def assert_all_arrived_verified(receiver):
    uids = {str(u) for u in Event.objects.values_list("uid", flat=True)}
    records = receiver.records()
    assert {r["id"] for r in records} <= uids  # duplicates only with an event's own id
    assert {r["id"] for r in records if 200 <= r["status"] < 300} == uids
    assert all(r["body"]["id"] == r["id"] for r in records)
    assert set(Delivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_it_delivers_everything_after_refusals_500s_and_timeouts(receiver, dispatchers):
    emit(10)
    dispatchers()  # the receiver is not listening: connection refused
    wait_until(lambda: every_delivery_tried("refused"), 30, what="refused attempts")
    receiver.start("fail500")
    make_due()
    wait_until(lambda: every_delivery_tried("http_error"), 30, what="500 attempts")
    receiver.start("slow", "2.5")
    make_due()
    wait_until(lambda: every_delivery_tried("timeout"), 30, what="timed-out attempts")
    receiver.start()
    make_due()
    wait_until(lambda: not Delivery.objects.filter(state="pending").exists(), 30, what="delivered")
    assert_all_arrived_verified(receiver)


def test_it_delivers_everything_when_a_dispatcher_is_killed_mid_delivery(receiver, dispatchers):
    receiver.start("slow", "1")
    emit(16)
    first = dispatchers("--batch", "4", timeout="2")

    def mid_batch():
        held = Delivery.objects.filter(state="pending", claimed_until__gt=timezone.now())
        return len(receiver.records()) >= 3 and held.exists()

    wait_until(mid_batch, 30, what="a batch under way after the first deliveries")
    first.send_signal(signal.SIGKILL)  # mid-batch: claims held, requests under way
    first.wait(10)
    held = Delivery.objects.filter(state="pending", claimed_until__gt=timezone.now()).count()
    assert held  # the dead dispatcher's claims: nobody sends them until their lease ends
    dispatchers("--batch", "4", timeout="2")  # takes the dead one's claims when their lease ends
    wait_until(lambda: not Delivery.objects.filter(state="pending").exists(), 60, what="delivered")
    assert_all_arrived_verified(receiver)


def test_it_sends_each_attempt_once_with_two_dispatchers(receiver, dispatchers):
    receiver.start()
    dispatchers("--batch", "10")
    dispatchers("--batch", "10")
    emit(200)
    wait_until(lambda: not Delivery.objects.filter(state="pending").exists(), 60, what="delivered")
    assert_all_arrived_verified(receiver)
    assert len(receiver.records()) == 200
    assert not Attempt.objects.values("delivery").annotate(n=Count("id")).filter(n__gt=1)
