"""Alerts: what needs a person right now, and notifying them once per event, then reminders.

`run_alerts()` (the `ops.alerts` schedule, every minute) lists the current events, records
them in the `Alert` table (one row per event key, shared by every cluster), resolves the rows
whose event is gone, and sends through apprise:
- a first notification once the event has lasted its delay (0, or ALERT_NODE_DOWN_MINUTES
  for a node that does not answer);
- a reminder every ALERT_REMINDER_MINUTES while it lasts;
- nothing for an event that is resolved.
Each send is claimed by a conditional UPDATE of the row's `last_sent_at` from the value it
had when read, in its own transaction, before apprise is called: two clusters running the
alerts at once send one message. A send that fails puts `last_sent_at` back so the next run
tries again; a process that dies between the claim and the send loses that one message
(the reminder follows), it never floods.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from cryptoadmin import faults
from cryptoadmin.words import count

from .models import Alert
from .notify import send

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    key: str
    kind: str
    title: str
    detail: str = ""
    delay: timedelta = timedelta(0)


def interrupted_broadcast_events() -> list[Event]:
    from broadcasts.selections import interrupted_broadcasts

    return [
        Event(
            f"broadcast.interrupted:{b.pk}",
            "broadcast.interrupted",
            f"Interrupted broadcast #{b.pk} on {b.wallet.name}",
            f"Broadcast #{b.pk} ({b.label}) was opened at {b.opened_at:%Y-%m-%d %H:%M:%S} UTC "
            f"and never finished: {count(b.output_count, 'output')}, "
            f"{b.wallet.currency.amount(b.total)}. Broadcasting is stopped for this wallet until "
            "it is closed by hand.",
        )
        for b in interrupted_broadcasts().select_related("wallet__currency")
    ]


def flagged_deposit_events() -> list[Event]:
    from ledger.models import NetworkTransaction as NT

    rows = (
        NT.objects.filter(type=NT.Type.DEPOSIT, flagged=True, credited_at__isnull=False)
        .exclude(state=NT.State.CLOSED_BY_HAND)
        .select_related("currency", "wallet")
    )
    return [
        Event(
            f"deposit.flagged:{r.pk}",
            "deposit.flagged",
            f"Credited deposit flagged: {r.currency.code} {r.txid[:16]}…",
            f"Deposit {r.txid} on {r.wallet.name} was credited at "
            f"{r.credited_at:%Y-%m-%d %H:%M:%S} UTC and is now flagged: "
            f"{r.flag_reason or r.state}.",
        )
        for r in rows
    ]


# The kind of a node the scheduler's probe found unreachable; the anonymous /health reads it.
NODE_DOWN = "node.unreachable"


def node_events() -> list[Event]:
    from ops.health import probe_nodes

    delay = timedelta(minutes=settings.ALERT_NODE_DOWN_MINUTES)
    return [
        Event(
            f"{NODE_DOWN}:{name}",
            NODE_DOWN,
            f"Node of wallet {name} is unreachable",
            f"The node of wallet {name} did not answer ({status.get('error', 'no answer')}).",
            delay,
        )
        for name, status in probe_nodes()["wallets"].items()
        if not status["ok"]
    ]


def outgoing_attention_events() -> list[Event]:
    from broadcasts.models import OutgoingTransaction

    # The state arrives with the approvals issue; until then there is nothing to report.
    state = getattr(OutgoingTransaction.State, "NEEDS_ATTENTION", None)
    if state is None:
        return []
    rows = OutgoingTransaction.objects.filter(state=state).select_related("currency")
    return [
        Event(
            f"outgoing.needs_attention:{o.pk}",
            "outgoing.needs_attention",
            f"Outgoing #{o.pk} needs attention",
            f"{o.currency.amount(o.amount)} to {o.address}: "
            f"{getattr(o, 'attention_reason', '') or 'see its page'}.",
        )
        for o in rows
    ]


def overdue_schedule_events() -> list[Event]:
    from ops.overview import schedule_rows

    return [
        Event(
            f"schedule.overdue:{row['schedule'].name}",
            "schedule.overdue",
            f"Schedule {row['schedule'].name} is overdue",
            f"Last success: {row['last_success'] or 'never'}; next run was due {row['next_run']}."
            + (f" Last error: {row['last_error']}" if row["last_error"] else ""),
        )
        for row in schedule_rows()
        if row["red"]
    ]


def failing_webhook_events() -> list[Event]:
    from events.failing import failing_endpoints

    return [
        Event(
            f"webhook.failing:{e.pk}",
            "webhook.failing",
            f"Webhook endpoint {e.url} failing since {e.failing_since:%Y-%m-%d %H:%M} UTC",
            f"Every delivery to {e.url} has failed since {e.failing_since:%Y-%m-%d %H:%M:%S} UTC "
            f"({count(e.pending_count, 'event')} waiting). Its deliveries and attempts are in the "
            "admin under Webhook endpoints.",
        )
        for e in failing_endpoints()
    ]


SOURCES = (
    interrupted_broadcast_events,
    flagged_deposit_events,
    node_events,
    outgoing_attention_events,
    overdue_schedule_events,
    failing_webhook_events,
)


def current_events() -> list[Event]:
    return [event for source in SOURCES for event in source()]


def record(events: list[Event], now) -> None:
    """Rows for new events, reopen recurring ones, resolve the ones that are gone."""
    keys = [e.key for e in events]
    with transaction.atomic():
        Alert.objects.bulk_create(
            [
                Alert(
                    key=e.key,
                    kind=e.kind,
                    title=e.title,
                    detail=e.detail,
                    first_seen_at=now,
                    last_seen_at=now,
                )
                for e in events
            ],
            ignore_conflicts=True,
        )
        # An event that comes back after being resolved is a new occurrence: notify it again.
        Alert.objects.filter(key__in=keys, resolved_at__isnull=False).update(
            resolved_at=None, first_seen_at=now, last_sent_at=None
        )
        Alert.objects.filter(key__in=keys).update(last_seen_at=now)
        Alert.objects.filter(resolved_at__isnull=True).exclude(key__in=keys).update(resolved_at=now)


def claim(event: Event, now) -> Alert | None:
    """The row, if this process won the right to send about it now (conditional UPDATE)."""
    reminder = timedelta(minutes=settings.ALERT_REMINDER_MINUTES)
    row = Alert.objects.filter(key=event.key, resolved_at__isnull=True).first()
    if row is None:
        return None
    if row.last_sent_at is None:
        if now - row.first_seen_at < event.delay:
            return None
    elif now - row.last_sent_at < reminder:
        return None
    won = (
        Alert.objects.filter(pk=row.pk, resolved_at__isnull=True)
        .filter(
            Q(last_sent_at=row.last_sent_at) if row.last_sent_at else Q(last_sent_at__isnull=True)
        )
        .update(
            last_sent_at=now, sent_count=F("sent_count") + 1, title=event.title, detail=event.detail
        )
    )
    return row if won else None


def run_alerts(now=None) -> dict:
    now = now or timezone.now()
    events = current_events()
    record(events, now)  # ON CONFLICT DO NOTHING: another cluster may record the same events
    sent = failed = 0
    urls = settings.ALERT_URLS
    if not urls:
        return {"events": len(events), "sent": 0, "failed": 0}
    for event in events:
        row = claim(event, now)
        if row is None:
            continue
        faults.point("alerts.after_claim")
        reminder = row.last_sent_at is not None
        title = ("Reminder: " if reminder else "") + event.title
        body = event.detail + (
            f"\n\nOpen since {row.first_seen_at:%Y-%m-%d %H:%M:%S} UTC." if reminder else ""
        )
        try:
            ok = send(f"[cryptoadmin] {title}", body, urls)
        except Exception:  # a notifier bug must not stop the other alerts
            log.exception("sending alert %s failed", event.key)
            ok = False
        if ok:
            sent += 1
        else:
            failed += 1
            # Give the message back: the next run claims it again.
            Alert.objects.filter(pk=row.pk, last_sent_at=now).update(
                last_sent_at=row.last_sent_at, sent_count=F("sent_count") - 1
            )
    return {"events": len(events), "sent": sent, "failed": failed}
