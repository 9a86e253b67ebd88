"""Claim an endpoint's due deliveries, send them, record every attempt.

A claim is a lease: the rows are taken with select_for_update(skip_locked) and marked with
this dispatcher's token and a deadline by a conditional UPDATE, so several dispatchers never
send one attempt twice; a dispatcher killed mid-batch leaves rows whose lease runs out and
another sends them again, with the same webhook-id (at least once)."""

from __future__ import annotations

import math
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from auditlog.models import LogEntry
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import Attempt, Delivery, WebhookEndpoint
from .webhooks import next_attempt, send

LEASE_MARGIN = 5  # seconds beyond the batch's worst case (every attempt to its timeout)
_local = threading.local()


def lease_seconds(batch: int) -> float:
    rounds = math.ceil(batch / max(1, settings.WEBHOOK_ENDPOINT_CONCURRENCY))
    return settings.WEBHOOK_TIMEOUT * (rounds + 1) + LEASE_MARGIN


def claim(endpoint_id: int, batch: int) -> list[Delivery]:
    now = timezone.now()
    token = uuid.uuid4()
    with transaction.atomic():
        ids = list(
            Delivery.objects.due(now)
            .filter(endpoint_id=endpoint_id, endpoint__enabled=True)
            .order_by("id")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            return []
        until = now + timedelta(seconds=lease_seconds(len(ids)))
        # Conditional on still being due: on SQLite (no row locks) the write lock decides.
        Delivery.objects.due(now).filter(id__in=ids).update(claimed_until=until, claim=token)
    return list(
        Delivery.objects.filter(claim=token).select_related("event", "endpoint").order_by("id")
    )


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False  # no proxy from the environment: the allow-list is the host
    return session


def _send_one(delivery):
    return send(_session(), delivery.endpoint, delivery.event)


def serve_endpoint(endpoint_id: int, batch: int) -> int:
    """Send one claimed batch of this endpoint's due deliveries; returns how many were sent."""
    deliveries = claim(endpoint_id, batch)
    if not deliveries:
        return 0
    workers = min(len(deliveries), max(1, settings.WEBHOOK_ENDPOINT_CONCURRENCY))
    if workers == 1:
        results = [_send_one(d) for d in deliveries]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(_send_one, deliveries))
    record(deliveries, results)
    return len(deliveries)


def record(deliveries, results) -> None:
    now = timezone.now()
    with transaction.atomic():
        Attempt.objects.bulk_create(
            [
                Attempt(
                    delivery=d,
                    started_at=now - timedelta(milliseconds=r.duration_ms),
                    duration_ms=r.duration_ms,
                    status=r.status,
                    outcome=r.outcome,
                    response_excerpt=r.excerpt,
                )
                for d, r in zip(deliveries, results, strict=True)
            ]
        )
        _settle_successes(deliveries, results, now)
        for d, r in zip(deliveries, results, strict=True):
            if not r.ok:
                _settle_failure(d, r, now)
        _endpoint_health(deliveries, results, now)


def _settle_successes(deliveries, results, now) -> None:
    """One UPDATE per 2xx code (a batch usually has one): these rows are delivered."""
    by_status: dict = {}
    for d, r in zip(deliveries, results, strict=True):
        if r.ok:
            by_status.setdefault(r.status, []).append(d.pk)
    for status, ids in by_status.items():
        Delivery.objects.filter(pk__in=ids, claim=deliveries[0].claim, state="pending").update(
            state=Delivery.State.DELIVERED,
            delivered_at=now,
            attempts=F("attempts") + 1,
            last_status=status,
            claimed_until=None,
            claim=None,
        )


def _settle_failure(delivery, result, now) -> None:
    mine = Delivery.objects.filter(pk=delivery.pk, claim=delivery.claim, state="pending")
    common = dict(
        attempts=F("attempts") + 1, last_status=result.status, claimed_until=None, claim=None
    )
    when = None
    if result.outcome != "gone":
        when = next_attempt(
            delivery.attempts + 1, delivery.created_at, now, retry_after=result.retry_after
        )
    if when is None:
        mine.update(state=Delivery.State.FAILED, **common)
    else:
        mine.update(next_attempt_at=when, **common)


def _endpoint_health(deliveries, results, now) -> None:
    endpoint = deliveries[0].endpoint
    if any(r.outcome == "gone" for r in results):
        disable(endpoint, "the receiver answered 410 Gone")
    if any(r.ok for r in results):
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(
            failing_since=None
        )
    else:
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
            failing_since=now
        )


def disable(endpoint, reason: str) -> bool:
    """Turn an endpoint off (its pending deliveries wait for it to be enabled again)."""
    won = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason[:200]
    )
    if won:
        # A queryset update sends no model signal: the audit log is told by hand.
        LogEntry.objects.log_create(
            endpoint,
            action=LogEntry.Action.UPDATE,
            force_log=True,
            changes={"enabled": ["True", "False"], "disabled_reason": ["", reason[:200]]},
        )
    return bool(won)


def due_endpoints(now=None) -> list[int]:
    now = now or timezone.now()
    return list(
        Delivery.objects.due(now)
        .filter(endpoint__enabled=True)
        .values_list("endpoint_id", flat=True)
        .distinct()
    )


def next_due_in(now=None) -> float | None:
    """Seconds until the earliest pending delivery is due or its lease ends, if any."""
    now = now or timezone.now()
    pending = Delivery.objects.pending().filter(endpoint__enabled=True)
    times = [
        pending.filter(Q(claimed_until__isnull=True))
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first(),
        pending.filter(claimed_until__isnull=False)
        .order_by("claimed_until")
        .values_list("claimed_until", flat=True)
        .first(),
    ]
    times = [t for t in times if t is not None]
    if not times:
        return None
    return max(0.0, (min(times) - now).total_seconds())
