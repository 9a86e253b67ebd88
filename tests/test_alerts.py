"""Alerts through apprise, against a loopback HTTP endpoint (apprise's JSON notifier):
one notification per event, a reminder later, none for a resolved event, never a flood."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from broadcasts.models import Broadcast
from cryptoadmin import faults
from ledger.models import NetworkTransaction as NT
from ledger.models import Wallet
from ops.alerts import run_alerts
from ops.models import Alert

pytestmark = pytest.mark.django_db


class Receiver:
    """A loopback endpoint for apprise's json:// notifier; records every message."""

    def __init__(self):
        self.messages = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.messages.append(json.loads(body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"json://127.0.0.1:{self.server.server_port}/alerts"

    def titles(self):
        return [m["title"] for m in self.messages]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    server = Receiver()
    settings.ALERT_URLS = server.url
    settings.ALERT_REMINDER_MINUTES = 60
    settings.ALERT_NODE_DOWN_MINUTES = 5
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def schedules_on_time(db):
    """The suite's registered schedules never ran here: keep them from being 'overdue'."""
    from django_q.models import Schedule

    Schedule.objects.update(next_run=timezone.now() + timedelta(hours=1))


def interrupt(wallet):
    return Broadcast.objects.create(
        wallet=wallet,
        state="opened",
        opened_at=timezone.now(),
        label=f"cryptoadmin-broadcast-{wallet.pk}",
    )


def test_it_notifies_an_interrupted_broadcast_once_then_reminds_then_stops_when_resolved(
    receiver, wallet
):
    broadcast = interrupt(wallet)
    t0 = timezone.now()

    assert run_alerts(t0)["sent"] == 1
    assert receiver.titles() == [
        f"[cryptoadmin] Interrupted broadcast #{broadcast.pk} on {wallet.name}"
    ]
    assert "closed by hand" in receiver.messages[0]["message"]
    for minutes in (1, 2, 30, 59):  # the schedule runs every minute: no flood
        assert run_alerts(t0 + timedelta(minutes=minutes))["sent"] == 0
    assert len(receiver.messages) == 1

    assert run_alerts(t0 + timedelta(minutes=61))["sent"] == 1
    assert (
        receiver.titles()[1]
        == f"[cryptoadmin] Reminder: Interrupted broadcast #{broadcast.pk} on {wallet.name}"
    )
    assert Alert.objects.get().sent_count == 2

    Broadcast.objects.filter(pk=broadcast.pk).update(state="failed")  # settled
    assert run_alerts(t0 + timedelta(minutes=200))["sent"] == 0
    assert len(receiver.messages) == 2
    assert Alert.objects.get().resolved_at is not None


def test_it_waits_the_set_time_before_notifying_an_unreachable_node(receiver, btc):
    Wallet.objects.create(
        name="down", currency=btc, backend_settings={"url": "http://u:secret@127.0.0.1:9"}
    )
    t0 = timezone.now()
    assert run_alerts(t0)["sent"] == 0
    assert run_alerts(t0 + timedelta(minutes=4))["sent"] == 0
    assert run_alerts(t0 + timedelta(minutes=5, seconds=1))["sent"] == 1
    assert receiver.titles() == ["[cryptoadmin] Node of wallet down is unreachable"]
    assert "secret" not in json.dumps(receiver.messages)


def test_it_notifies_a_flagged_credited_deposit_and_an_overdue_schedule_once_each(receiver, wallet):
    from django_q.models import Schedule

    NT.objects.create(
        currency=wallet.currency,
        wallet=wallet,
        txid="ab" * 32,
        type="deposit",
        state="open",
        credited_at=timezone.now(),
        flagged=True,
        flag_reason="lost confirmations after crediting",
    )
    NT.objects.create(
        currency=wallet.currency,
        wallet=wallet,
        txid="cd" * 32,
        type="deposit",
        state="open",
        flagged=True,
        flag_reason="conflicted, never credited",
    )  # not credited: no money at stake
    Schedule.objects.filter(name="broadcasts.broadcast").update(
        next_run=timezone.now() - timedelta(minutes=10)
    )
    t0 = timezone.now()
    assert run_alerts(t0)["sent"] == 2
    assert run_alerts(t0 + timedelta(minutes=1))["sent"] == 0
    assert sorted(receiver.titles()) == [
        f"[cryptoadmin] Credited deposit flagged: BTC {'ab' * 8}…",
        "[cryptoadmin] Schedule broadcasts.broadcast is overdue",
    ]
    assert "lost confirmations after crediting" in json.dumps(receiver.messages)


def test_it_notifies_again_when_a_resolved_event_comes_back(receiver, btc):
    down = Wallet.objects.create(
        name="flaky", currency=btc, backend_settings={"url": "http://u:p@127.0.0.1:9"}
    )
    t0 = timezone.now()
    run_alerts(t0)
    assert run_alerts(t0 + timedelta(minutes=6))["sent"] == 1
    down.enabled = False
    down.save()
    assert run_alerts(t0 + timedelta(minutes=7))["sent"] == 0  # resolved, and no message about it
    down.enabled = True
    down.save()
    t1 = t0 + timedelta(minutes=8)
    assert run_alerts(t1)["sent"] == 0  # a new occurrence waits its delay again
    assert run_alerts(t1 + timedelta(minutes=6))["sent"] == 1
    assert len(receiver.messages) == 2


def test_it_sends_again_on_the_next_run_when_the_endpoint_failed(receiver, wallet):
    interrupt(wallet)
    receiver.status = 500
    t0 = timezone.now()
    assert run_alerts(t0) == {"events": 1, "sent": 0, "failed": 1}
    receiver.status = 200
    assert run_alerts(t0 + timedelta(minutes=1))["sent"] == 1
    assert len(receiver.messages) == 2 and Alert.objects.get().sent_count == 1


def test_it_records_events_but_sends_nothing_without_alert_urls(settings, wallet):
    settings.ALERT_URLS = ""
    interrupt(wallet)
    assert run_alerts()["sent"] == 0
    assert Alert.objects.get().last_sent_at is None


@pytest.mark.django_db(transaction=True)
def test_it_sends_one_message_when_two_clusters_run_the_alerts_at_once(receiver, wallet):
    from django.db import connection

    interrupt(wallet)
    now = timezone.now()
    barrier = threading.Barrier(4)
    results = []

    def cluster():
        barrier.wait()
        try:
            results.append(run_alerts(now)["sent"])
        finally:
            connection.close()

    threads = [threading.Thread(target=cluster) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 1]
    assert len(receiver.messages) == 1


def test_it_loses_at_most_one_message_when_killed_between_claim_and_send(receiver, wallet):
    interrupt(wallet)
    t0 = timezone.now()
    with faults.armed({"alerts.after_claim": "raise"}), pytest.raises(faults.InjectedFault):
        run_alerts(t0)
    assert receiver.messages == []
    assert run_alerts(t0 + timedelta(minutes=1))["sent"] == 0  # claimed: no burst after a crash
    assert run_alerts(t0 + timedelta(minutes=61))["sent"] == 1  # the reminder comes
