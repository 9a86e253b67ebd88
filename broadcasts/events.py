"""Withdrawal events: `emit(type, ids)` inside the transaction that moved these outgoing
transactions, right after the conditional UPDATE that moved them (rows read back in that
transaction, so the event carries what committed with it)."""

from __future__ import annotations

from ledger import outbox

from .models import OutgoingTransaction

State = OutgoingTransaction.State


def fee_share(out: OutgoingTransaction, broadcast) -> str | None:
    share = broadcast.fee_share(out.amount, signed=True) if broadcast is not None else None
    return None if share is None else out.currency.format(share)


def withdrawal_data(out: OutgoingTransaction) -> dict:
    """A withdrawal in the API's vocabulary (amounts as decimal strings)."""
    broadcast = out.broadcast
    sent = broadcast is not None and out.state in (State.BROADCASTING, State.BROADCASTED)
    return {
        "id": str(out.pk),
        "state": out.state,
        "user": out.account.user_id,
        "currency": out.currency.code,
        "address": out.address,
        "amount": out.currency.format(out.amount),
        "label": out.label,
        "txid": (broadcast.txid or None) if sent else None,
        "fee": fee_share(out, broadcast) if sent else None,
        "reason": out.close_reason or out.last_error or out.approval_reason or None,
    }


def emit(type_: str, ids, **extra) -> int:
    """One `type_` event per outgoing transaction of `ids` (those that exist)."""
    ids = list(ids)
    if not ids:
        return 0
    rows = (
        OutgoingTransaction.objects.filter(pk__in=ids)
        .select_related("currency", "account", "broadcast")
        .order_by("pk")
    )
    events = [
        outbox.Emitted(type_, "withdrawal", str(out.pk), {**withdrawal_data(out), **extra})
        for out in rows
    ]
    outbox.emit_many(events)
    return len(events)
