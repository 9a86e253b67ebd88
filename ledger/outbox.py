"""What money paths call to report a change the product hears about (deposit.seen,
withdrawal.queued, transfer.posted...). Call it inside the database transaction that makes
the change: the receiver (the events app) writes the event rows in that same transaction, so
an event exists exactly when its change committed. Data uses the API's vocabulary: amounts
as decimal strings (`money.from_units`), never floats."""

from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS

from ledger.signals import events_emitted

# Every event type the product can hear about: the contract webhook endpoints subscribe to.
TYPES = (
    "deposit.seen",
    "deposit.confirmations",
    "deposit.credited",
    "deposit.conflicted",
    "withdrawal.awaiting_approval",
    "withdrawal.queued",
    "withdrawal.approved",
    "withdrawal.rejected",
    "withdrawal.cancelled",
    "withdrawal.broadcasted",
    "withdrawal.confirmed",
    "withdrawal.returned",
    "withdrawal.needs_attention",
    "transfer.posted",
    "address.created",
)


@dataclass(frozen=True)
class Emitted:
    type: str  # "deposit.credited", "withdrawal.queued", ...
    object_type: str  # "deposit", "withdrawal", "transfer", "address"
    object_id: str  # the object's id as the API names it
    data: dict = field(default_factory=dict)


def emit(
    type: str, object_type: str, object_id, data: dict | None = None, *, using=DEFAULT_DB_ALIAS
):
    emit_many([Emitted(type, object_type, str(object_id), data or {})], using=using)


def emit_many(rows: list[Emitted], *, using=DEFAULT_DB_ALIAS):
    """One signal for a whole bulk write (the confirmation cycle reports thousands at once)."""
    unknown = {row.type for row in rows} - set(TYPES)
    if unknown:
        # A misspelt type would reach no subscriber: fail in the emitting path's own tests.
        raise ValueError(f"unknown event type(s): {sorted(unknown)}")
    if rows:
        events_emitted.send(sender=Emitted, rows=list(rows), using=using)
