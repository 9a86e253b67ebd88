"""Writes the outbox rows for `ledger.outbox.emit` / `emit_many`, inside the emitting
transaction: the events, their per-object sequence numbers, one delivery per subscribed
endpoint, and (PostgreSQL) a NOTIFY that wakes the dispatchers when that transaction commits."""

from __future__ import annotations

import uuid

from django.db import connections, transaction
from django.dispatch import receiver
from django.utils import timezone

from ledger.signals import events_emitted

from .models import Delivery, Event, ObjectSequence, WebhookEndpoint

CHANNEL = "cryptoadmin_events"
CHUNK = 500  # rows per upsert statement (SQLite's bound-parameter limit)


@receiver(events_emitted)
def write_events(sender, rows, using, **kwargs):
    # savepoint=False: joins the caller's transaction, so the rows roll back with its change.
    with transaction.atomic(using=using, savepoint=False):
        write(rows, using)


def write(rows, using) -> list[Event]:
    now = timezone.now()
    connection = connections[using]
    postgres = connection.vendor == "postgresql"
    firsts = _reserve_sequences(rows, using)
    xid = _current_xid(connection) if postgres else 0
    events = []
    for row in rows:
        key = (row.object_type, row.object_id)
        sequence = firsts[key]
        firsts[key] += 1
        events.append(
            Event(
                uid=uuid.uuid4(),
                type=row.type,
                created_at=now,
                object_type=row.object_type,
                object_id=row.object_id,
                sequence=sequence,
                data=row.data,
                xid=xid,
            )
        )
    # Ids come back from PostgreSQL (RETURNING) and SQLite 3.35+ alike.
    Event.objects.using(using).bulk_create(events, batch_size=CHUNK)
    endpoints = list(WebhookEndpoint.objects.using(using).filter(enabled=True))
    deliveries = [
        Delivery(endpoint=e, event=ev, created_at=now, next_attempt_at=now)
        for ev in events
        for e in endpoints
        if e.wants(ev.type)
    ]
    Delivery.objects.using(using).bulk_create(deliveries, batch_size=CHUNK)
    if postgres and deliveries:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    return events


def _reserve_sequences(rows, using) -> dict:
    """{(object_type, object_id): first sequence number to use}, raised in one upsert per chunk.
    Keys in sorted order, so two bulk writers lock the counters in one order (no deadlock)."""
    counts: dict = {}
    for row in rows:
        key = (row.object_type, row.object_id)
        counts[key] = counts.get(key, 0) + 1
    table = ObjectSequence._meta.db_table
    firsts = {}
    keys = sorted(counts)
    with connections[using].cursor() as cursor:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            params = [p for key in chunk for p in (*key, counts[key])]
            cursor.execute(
                f"INSERT INTO {table} (object_type, object_id, last) VALUES {values} "
                f"ON CONFLICT (object_type, object_id) DO UPDATE "
                f"SET last = {table}.last + excluded.last RETURNING object_type, object_id, last",
                params,
            )
            for object_type, object_id, last in cursor.fetchall():
                key = (object_type, object_id)
                firsts[key] = last - counts[key] + 1
    return firsts


def _current_xid(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        return cursor.fetchone()[0]
