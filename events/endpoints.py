"""Operator flows on webhook endpoints: add one (its secret returned once), rotate its secret,
redeliver events. Each checks its permission and leaves the admin history entry."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ledger import actors
from ledger.hosts import UrlRefused
from ledger.hosts import check_url as check_host

from .models import Delivery, Event, WebhookEndpoint, new_secret
from .outbox import CHANNEL

ADD_PERM = "events.add_webhookendpoint"
CHANGE_PERM = "events.change_webhookendpoint"
REPLAY_PERM = "events.replay_event"
ROTATION_OVERLAP = timedelta(hours=24)  # the old secret still signs this long after a rotation


def check_url(url: str) -> None:
    try:
        check_host(url, settings.WEBHOOK_HOSTS, setting="WEBHOOK_HOSTS")
    except UrlRefused as refused:
        raise ValidationError(f"Refused: {refused}.", code=refused.code) from None


def check_types(types) -> None:
    from ledger.outbox import TYPES

    unknown = sorted(set(types) - set(TYPES))
    if unknown:
        raise ValidationError(
            f"Unknown event type(s): {', '.join(unknown)}.", code="unknown_event_type"
        )


@transaction.atomic
def add_endpoint(url: str, event_types=(), *, by, enabled=True) -> WebhookEndpoint:
    actors.require(by, ADD_PERM)
    check_url(url)
    check_types(event_types)
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        event_types=sorted(set(event_types)),
        enabled=enabled,
        created_by=actors.person(by),
    )
    actors.log_action(by, endpoint, "Added a webhook endpoint", added=True)
    return endpoint


@transaction.atomic
def rotate_secret(endpoint: WebhookEndpoint, *, by) -> str:
    """A new secret; the old one also signs for ROTATION_OVERLAP so receivers can switch."""
    actors.require(by, CHANGE_PERM)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    actors.log_action(by, endpoint, "Rotated the signing secret")
    return endpoint.secret


@transaction.atomic
def redeliver(events, *, by, endpoints=None) -> int:
    """Send these events again (same webhook-id) to every enabled endpoint subscribed to them,
    or to `endpoints`: a new delivery each, due now."""
    actors.require(by, REPLAY_PERM)
    now = timezone.now()
    targets = list(endpoints if endpoints is not None else WebhookEndpoint.objects.all())
    targets = [e for e in targets if e.enabled]
    rows = [
        Delivery(endpoint=e, event=ev, created_at=now, next_attempt_at=now)
        for ev in events
        for e in targets
        if e.wants(ev.type)
    ]
    Delivery.objects.bulk_create(rows, batch_size=500)
    for endpoint in targets:
        actors.log_action(by, endpoint, f"Redelivered {len(rows)} event deliveries")
    _wake()
    return len(rows)


def replay_range(start, end, *, by, endpoints=None) -> int:
    events = Event.objects.filter(created_at__gte=start, created_at__lt=end).order_by("id")
    return redeliver(list(events), by=by, endpoints=endpoints)


def _wake() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
