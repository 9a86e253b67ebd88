"""The admin's events, webhook endpoints (Admin role, secret shown once, audit log) and
deliveries (attempts shown escaped, redelivery and replay)."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from events.models import Attempt, Delivery, Event, WebhookEndpoint
from ledger import outbox

pytestmark = pytest.mark.django_db
ADD_URL = reverse("admin:events_webhookendpoint_add")


def add_form(url="http://127.0.0.1:8999/hook", types=("deposit.credited",)):
    return {"url": url, "event_types": list(types), "enabled": "on"}


def test_it_shows_the_secret_once_when_an_admin_adds_an_endpoint(client, admin):
    client.force_login(admin)
    page = client.post(ADD_URL, add_form()).content.decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and endpoint.secret in page
    assert endpoint.event_types == ["deposit.credited"] and endpoint.created_by == admin
    change = reverse("admin:events_webhookendpoint_change", args=[endpoint.pk])
    assert endpoint.secret not in client.get(change).content.decode()
    entry = LogEntry.objects.get_for_object(endpoint).get()
    assert endpoint.secret not in str(entry.changes) and "secret" in entry.changes_dict


@override_settings(WEBHOOK_HOSTS=["hooks.internal"])
def test_it_refuses_a_host_off_the_allow_list(client, admin):
    client.force_login(admin)
    page = client.post(ADD_URL, add_form(url="http://169.254.169.254/latest")).content.decode()
    assert "not on WEBHOOK_HOSTS" in page and not WebhookEndpoint.objects.exists()
    client.post(ADD_URL, add_form(url="https://hooks.internal/in"))
    assert WebhookEndpoint.objects.get().url == "https://hooks.internal/in"


def test_it_lets_viewers_and_operators_read_but_not_add(client, viewer, operator):
    outbox.emit("deposit.seen", "deposit", 3)
    for user in (viewer, operator):
        client.force_login(user)
        assert client.get(ADD_URL).status_code == 403
        events = client.get(reverse("admin:events_event_changelist"))
        assert events.status_code == 200 and "deposit.seen" in events.content.decode()
        assert client.post(ADD_URL, add_form()).status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_it_shows_a_response_excerpt_escaped(client, viewer):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/")
    outbox.emit("deposit.seen", "deposit", 1)
    delivery = Delivery.objects.get()
    Attempt.objects.create(
        delivery=delivery,
        started_at=timezone.now(),
        duration_ms=3,
        status=500,
        outcome="http_error",
        response_excerpt="<script>alert(1)</script>",
    )
    client.force_login(viewer)
    page = client.get(reverse("admin:events_delivery_change", args=[delivery.pk]))
    text = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert(1)" not in text
    assert endpoint.url in text


def test_it_redelivers_one_delivery_with_the_same_event(client, admin, operator):
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/")
    outbox.emit("deposit.seen", "deposit", 1)
    first = Delivery.objects.get()
    Delivery.objects.update(state="delivered")
    changelist = reverse("admin:events_delivery_changelist")
    post = {"action": "redeliver", "_selected_action": [first.pk]}
    client.force_login(operator)
    client.post(changelist, post)
    assert Delivery.objects.count() == 1  # operators may not
    client.force_login(admin)
    client.post(changelist, post)
    again = Delivery.objects.exclude(pk=first.pk).get()
    assert (again.event_id, again.state) == (first.event_id, "pending")


def test_it_replays_a_time_range_to_one_endpoint(client, admin):
    chosen = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/a")
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/b")
    for n in range(3):
        outbox.emit("deposit.seen", "deposit", n)
    old = timezone.now() - timedelta(days=2)
    Event.objects.filter(object_id="0").update(created_at=old)
    Delivery.objects.all().delete()
    client.force_login(admin)
    start = timezone.now() - timedelta(hours=1)
    client.post(
        reverse("admin:events_webhookendpoint_replay"),
        {
            "start": start.strftime("%Y-%m-%d %H:%M:%S"),
            "end": (start + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S"),
            "endpoint": chosen.pk,
        },
    )
    got = sorted(Delivery.objects.values_list("endpoint_id", "event__object_id"))
    assert got == [(chosen.pk, "1"), (chosen.pk, "2")]


def test_it_rotates_the_secret_and_keeps_the_old_one_signing_a_while(client, admin):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/")
    old = endpoint.secret
    client.force_login(admin)
    page = client.post(
        reverse("admin:events_webhookendpoint_changelist"),
        {"action": "rotate", "_selected_action": [endpoint.pk]},
    ).content.decode()
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in page and old not in page
    assert endpoint.previous_secret == old and endpoint.previous_secret_expires_at > timezone.now()
