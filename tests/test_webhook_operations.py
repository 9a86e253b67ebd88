"""Running webhooks: the endpoint failing for a day raises an alert and a banner on the admin
home, /metrics counts pending deliveries and failures, `add_webhook_endpoint` for automation."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from events.models import Attempt, Delivery, WebhookEndpoint
from ledger import outbox
from ops.alerts import current_events

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-0123456789abcdef"


def test_it_alerts_and_shows_a_banner_for_an_endpoint_failing_for_a_day(client, viewer):
    bad = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/bad")
    recent = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/recent")
    WebhookEndpoint.objects.filter(pk=bad.pk).update(
        failing_since=timezone.now() - timedelta(hours=25)
    )
    WebhookEndpoint.objects.filter(pk=recent.pk).update(failing_since=timezone.now())
    keys = [e.key for e in current_events() if e.kind == "webhook.failing"]
    assert keys == [f"webhook.failing:{bad.pk}"]
    client.force_login(viewer)
    page = client.get("/admin/").content.decode()
    assert "1 webhook endpoint failing" in page and bad.url in page and recent.url not in page
    WebhookEndpoint.objects.filter(pk=bad.pk).update(failing_since=None)
    assert not [e for e in current_events() if e.kind == "webhook.failing"]


@override_settings(METRICS_TOKEN=TOKEN)
def test_it_shows_pending_oldest_age_and_failures_per_endpoint_in_metrics(client):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/")
    outbox.emit("deposit.seen", "deposit", 1)
    outbox.emit("deposit.seen", "deposit", 2)
    first = Delivery.objects.order_by("id").first()
    Delivery.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    for outcome in ("refused", "http_error", "ok"):
        Attempt.objects.create(
            delivery=first, started_at=timezone.now(), duration_ms=1, outcome=outcome
        )
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    label = (("endpoint", str(endpoint.pk)),)
    assert samples[("cryptoadmin_webhook_pending", label)] == 2
    assert 590 < samples[("cryptoadmin_webhook_oldest_pending_age_seconds", label)] < 700
    assert samples[("cryptoadmin_webhook_delivery_failures_total", label)] == 2


def test_it_adds_an_endpoint_from_the_command_and_prints_the_secret_last():
    out = io.StringIO()
    call_command(
        "add_webhook_endpoint",
        "http://127.0.0.1:8999/hook",
        "--event",
        "deposit.credited",
        "--event",
        "withdrawal.broadcasted",
        stdout=out,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert out.getvalue().splitlines()[-1] == endpoint.secret
    assert endpoint.event_types == ["deposit.credited", "withdrawal.broadcasted"]


@override_settings(WEBHOOK_HOSTS=[])
def test_it_refuses_from_the_command_a_host_off_the_allow_list():
    with pytest.raises(CommandError, match="not on WEBHOOK_HOSTS"):
        call_command("add_webhook_endpoint", "http://127.0.0.1:8999/hook", stdout=io.StringIO())
    assert not WebhookEndpoint.objects.exists()
