"""The events invariant (tests/invariants.py runs it with the others): each deposit's and
withdrawal's events, replayed in sequence, give the database's state: numbered 1..n, a
deposit's last confirmations and its one credit, a withdrawal's last state."""

from __future__ import annotations

from collections import defaultdict

from ledger.models import NetworkTransaction, Wallet

NT = NetworkTransaction


# A withdrawal's state after each event type (withdrawal.returned follows the decision).
EVENT_STATES = {
    "withdrawal.awaiting_approval": "awaiting_approval",
    "withdrawal.queued": "queued",
    "withdrawal.approved": "queued",
    "withdrawal.rejected": "rejected",
    "withdrawal.cancelled": "cancelled",
    "withdrawal.broadcasted": "broadcasted",
    "withdrawal.confirmed": "broadcasted",
    "withdrawal.needs_attention": "needs_attention",
}


def _replayed(object_type: str) -> dict[str, list]:
    from events.models import Event

    out = defaultdict(list)
    for event in Event.objects.filter(object_type=object_type).order_by("object_id", "sequence"):
        out[event.object_id].append(event)
    return out


def events_replay_state(wallet: Wallet) -> list[str]:
    from broadcasts.models import OutgoingTransaction
    from events.deposits import current_confirmations

    bad = []
    deposits = _replayed("deposit")
    for row in NT.objects.filter(wallet=wallet, type=NT.Type.DEPOSIT).select_related("wallet"):
        events = deposits.get(str(row.pk), [])
        if [e.sequence for e in events] != list(range(1, len(events) + 1)):
            bad.append(f"deposit {row.pk}: event sequence {[e.sequence for e in events]}")
        counts = [e for e in events if "confirmations" in e.type or e.type == "deposit.seen"]
        credits = sum(e.type == "deposit.credited" for e in events)
        if row.state != NT.State.CLOSED_BY_HAND and (
            not counts or counts[-1].data["confirmations"] != current_confirmations(row)
        ):
            last = counts[-1].data["confirmations"] if counts else None
            bad.append(
                f"deposit {row.pk}: events say {last} confirmations, the row {row.confirmations}"
            )
        if credits != (1 if row.credited_at else 0):
            bad.append(
                f"deposit {row.pk}: {credits} deposit.credited events, credited {row.credited_at}"
            )
    withdrawals = _replayed("withdrawal")
    for out in OutgoingTransaction.objects.filter(wallet=wallet):
        events = [e for e in withdrawals.get(str(out.pk), []) if e.type in EVENT_STATES]
        state = EVENT_STATES[events[-1].type] if events else None
        allowed = {out.state} | ({"queued"} if out.state == "broadcasting" else set())
        if state not in allowed:
            bad.append(f"withdrawal {out.pk}: events say {state}, the row {out.state}")
    return bad
