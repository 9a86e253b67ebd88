"""Moving polled rows forward from what the node said: written in bulk, deposits due a
credit credited."""

from django.db import transaction
from django.utils import timezone

from cryptoadmin import faults

from ..backends import BackendError
from ..models import Currency, NetworkTransaction
from ..signals import deposits_changed
from .bulk import UPDATED_FIELDS, write_changes
from .crediting import credit_deposits
from .rows import record_block, record_missing, record_state
from .summary import Summary

NT = NetworkTransaction


def apply(
    rows: list[NetworkTransaction], infos: dict, currency: Currency, tip_height: int | None = None
) -> Summary:
    """Move each row forward from what the node said; write only what changed, in bulk.

    Every write is conditional on the state the row was read in: a row an operator closed
    by hand meanwhile (or another worker moved on) is skipped, never overwritten. Deposits
    due a credit are credited, and closed if at the polling threshold, many per transaction
    (crediting.credit_deposits)."""
    summary = Summary(checked=len(rows))
    now = timezone.now()
    read_states = {row.pk: row.state for row in rows}
    changed, changed_fields, to_credit = [], set(), []
    for row in rows:
        info = infos.get(row.txid)
        before = [getattr(row, f) for f in UPDATED_FIELDS]
        if _record_answer(row, info, currency, tip_height, now, summary):
            to_credit.append((row, info))
        diff = {f for f, old in zip(UPDATED_FIELDS, before, strict=True) if getattr(row, f) != old}
        if diff:
            changed.append(row)
            changed_fields |= diff
        row.last_checked_at = now
    _write(rows, changed, changed_fields, read_states, now)
    summary.changed = len(changed)
    faults.point("poll.after_write")
    for row in credit_deposits(to_credit, currency):
        summary.credited += 1
        if row.state == NT.State.CLOSED:
            summary.closed += 1
    return summary


def _write(rows, changed, changed_fields, read_states, now) -> None:
    """The changed rows in bulk with their events (confirmations, conflicts) in the same
    transaction; the others' check time."""
    changed_ids = {r.pk for r in changed}
    unchanged = [r.pk for r in rows if r.pk not in changed_ids]
    faults.point("poll.before_write")
    with transaction.atomic():
        if changed:
            # Only the columns that moved (usually confirmations), last_checked_at folded in.
            write_changes(
                changed,
                [f for f in UPDATED_FIELDS if f in changed_fields] + ["last_checked_at"],
                read_states=read_states,
            )
            deposits_changed.send(NT, ids=[row.pk for row in changed], using="default")
        if unchanged:
            NT.objects.polled().filter(pk__in=unchanged).update(last_checked_at=now)


def _record_answer(row, info, currency: Currency, tip_height, now, summary: Summary) -> bool:
    """Record the node's answer about one row in memory, counting a failure or a close.
    True when the row is a deposit now due a credit."""
    if info is None or isinstance(info, BackendError):
        record_missing(row, info, now)
        summary.failed += 1
        return False
    was_closed = row.state == NT.State.CLOSED
    record_state(row, info, currency, now)
    record_block(row, info, tip_height)
    if row.state == NT.State.CLOSED and not was_closed:
        summary.closed += 1
    return (
        row.type == NT.Type.DEPOSIT
        and row.credited_at is None
        and row.state == NT.State.OPEN
        and info.confirmations >= currency.crediting_threshold
    )
