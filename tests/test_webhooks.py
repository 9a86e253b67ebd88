"""Webhook attempts: signed as Standard Webhooks says, the same id on every retry, the retry
schedule, 410, no redirects, a timeout per attempt, the host allow-list. In-process: a real
HTTP receiver in a thread verifying with `standardwebhooks`; the dispatch runs in the test."""

import random
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from events.dispatch import claim, serve_endpoint
from events.models import Delivery, WebhookEndpoint
from events.webhooks import GIVE_UP, SCHEDULE, next_attempt
from ledger import outbox
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db
ONE_AT_A_TIME = override_settings(WEBHOOK_ENDPOINT_CONCURRENCY=1, WEBHOOK_TIMEOUT=0.5)


@pytest.fixture
def receiver():
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/")
    server = Receiver(endpoint.secret).start()
    endpoint.url = server.url
    endpoint.save()
    server.endpoint = endpoint
    yield server
    server.stop()


def make_due():
    Delivery.objects.pending().update(next_attempt_at=timezone.now())


@ONE_AT_A_TIME
def test_it_signs_deliveries_that_standardwebhooks_verifies(receiver):
    outbox.emit("deposit.credited", "deposit", 5, {"amount": "0.10000000"})
    assert serve_endpoint(receiver.endpoint.pk, 10) == 1
    assert receiver.rejected == 0
    [got] = receiver.got
    body = got["body"]
    assert (body["type"], body["object"], body["sequence"]) == (
        "deposit.credited",
        {"type": "deposit", "id": "5"},
        1,
    )
    assert body["data"] == {"amount": "0.10000000"} and got["id"] == body["id"]
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 1, 204)


@ONE_AT_A_TIME
def test_it_retries_with_the_same_webhook_id_and_backs_off(receiver):
    receiver.replies = [(500, {}, b"<b>oops</b>")]
    outbox.emit("deposit.seen", "deposit", 1)
    before = timezone.now()
    serve_endpoint(receiver.endpoint.pk, 10)
    delivery = Delivery.objects.get()
    assert delivery.state == "pending" and delivery.attempts == 1
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert SCHEDULE[0] * 0.89 <= wait <= SCHEDULE[0] * 1.1 + 2
    attempt = delivery.attempt_set.get()
    assert (attempt.status, attempt.outcome, attempt.response_excerpt) == (
        500,
        "http_error",
        "<b>oops</b>",
    )
    assert serve_endpoint(receiver.endpoint.pk, 10) == 0  # not due yet
    receiver.endpoint.refresh_from_db()
    assert receiver.endpoint.failing_since is not None
    make_due()
    serve_endpoint(receiver.endpoint.pk, 10)
    assert [g["id"] for g in receiver.got][0] == [g["id"] for g in receiver.got][1]
    assert Delivery.objects.get().state == "delivered"
    receiver.endpoint.refresh_from_db()
    assert receiver.endpoint.failing_since is None


@ONE_AT_A_TIME
def test_it_honours_retry_after(receiver):
    receiver.replies = [(429, {"Retry-After": "600"}, b"")]
    outbox.emit("deposit.seen", "deposit", 1)
    serve_endpoint(receiver.endpoint.pk, 10)
    wait = Delivery.objects.get().next_attempt_at - timezone.now()
    assert wait > timedelta(seconds=590)


@ONE_AT_A_TIME
def test_it_disables_the_endpoint_on_410(receiver):
    receiver.replies = [(410, {}, b"")]
    outbox.emit("deposit.seen", "deposit", 1)
    outbox.emit("deposit.seen", "deposit", 2)
    serve_endpoint(receiver.endpoint.pk, 1)
    receiver.endpoint.refresh_from_db()
    assert not receiver.endpoint.enabled and "410" in receiver.endpoint.disabled_reason
    states = list(Delivery.objects.order_by("id").values_list("state", flat=True))
    assert states == ["failed", "pending"]
    assert serve_endpoint(receiver.endpoint.pk, 10) == 0  # nothing goes to a disabled endpoint


@ONE_AT_A_TIME
def test_it_follows_no_redirect(receiver):
    receiver.replies = [(302, {"Location": "/elsewhere"}, b"")]
    outbox.emit("deposit.seen", "deposit", 1)
    serve_endpoint(receiver.endpoint.pk, 10)
    assert receiver.paths == ["/hook"]
    assert Delivery.objects.get().attempt_set.get().outcome == "redirect"


@ONE_AT_A_TIME
def test_it_ends_an_attempt_at_its_timeout(receiver):
    receiver.delay = 2.0
    outbox.emit("deposit.seen", "deposit", 1)
    serve_endpoint(receiver.endpoint.pk, 10)
    attempt = Delivery.objects.get().attempt_set.get()
    assert attempt.outcome == "timeout" and attempt.status is None
    assert attempt.duration_ms < 1900


@ONE_AT_A_TIME
def test_it_calls_no_host_off_the_allow_list(receiver):
    outbox.emit("deposit.seen", "deposit", 1)
    with override_settings(WEBHOOK_HOSTS=["hooks.example"]):
        serve_endpoint(receiver.endpoint.pk, 10)
    assert receiver.paths == []
    assert Delivery.objects.get().attempt_set.get().outcome == "host_not_allowed"


def test_it_backs_off_on_the_schedule_then_daily_then_gives_up():
    start = timezone.now()
    steady = random.Random(1)
    waits = []
    now = start
    for attempts in range(1, 20):
        when = next_attempt(attempts, start, now, rng=steady)
        if when is None:
            break
        waits.append((when - now).total_seconds())
        now = when
    for wait, base in zip(waits, SCHEDULE, strict=False):
        assert base * 0.9 <= wait <= base * 1.1
    assert all(86400 * 0.9 <= w <= 86400 * 1.1 for w in waits[len(SCHEDULE) :])
    assert now - start <= GIVE_UP and len(waits) > len(SCHEDULE)


def test_it_lets_one_claim_take_a_delivery():
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/")
    outbox.emit("deposit.seen", "deposit", 1)
    assert len(claim(endpoint.pk, 10)) == 1
    assert claim(endpoint.pk, 10) == []


def test_it_reads_a_hostile_retry_after_as_none():
    from events.webhooks import _retry_after

    # str.isdigit() accepts "²" and other digits float() refuses: a receiver must not crash us.
    assert [_retry_after(v) for v in ("²", "١٢", "-5", "soon", "120")] == [
        None,
        None,
        None,
        None,
        120,
    ]
