"""An operator closes polled rows by hand, with a reason; no money moves."""

from django.db import transaction
from django.utils import timezone

from cryptoadmin.errors import CloseRefused

from ..models import NetworkTransaction

NT = NetworkTransaction


def close_rows_by_hand(row_ids, user, reason: str) -> list[NetworkTransaction]:
    """An operator closes polled rows with a reason; moves no money. Closed rows stay closed."""
    reason = (reason or "").strip()
    if not reason:
        raise CloseRefused("A reason is required to close a network transaction by hand.")
    now = timezone.now()
    with transaction.atomic():
        rows = list(NT.objects.select_for_update().polled().filter(pk__in=list(row_ids)))
        for row in rows:
            row.state, row.state_changed_at, row.closed_at = NT.State.CLOSED_BY_HAND, now, now
            row.closed_by, row.close_reason = user, reason
        NT.objects.bulk_update(
            rows, ["state", "state_changed_at", "closed_at", "closed_by", "close_reason"]
        )
    return rows
