"""The broadcasts an import must wait for (ledger.imports asks every app through the hooks
registry: the books never import the apps built on them)."""

from django.db.models import Q

from .models import Broadcast


def unsettled(wallet, opened_since=None) -> list[int]:
    """Broadcasts whose effect on the node the books may not hold: opened (a send in flight
    or interrupted: it may have paid, unbooked), or sent with the fee not booked yet (the
    node is short of the books by it). `opened_since`: also any opened at or after then,
    whatever became of it (the books read before it may be stale)."""
    rule = Q(state=Broadcast.State.OPENED) | Q(
        fee__isnull=True,
        state__in=[Broadcast.State.BROADCASTED, Broadcast.State.CLOSED_BROADCASTED],
    )
    if opened_since is not None:
        rule |= Q(opened_at__gte=opened_since)
    return list(
        Broadcast.objects.filter(rule, wallet=wallet).order_by("pk").values_list("pk", flat=True)
    )
