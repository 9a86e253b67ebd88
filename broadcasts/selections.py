"""The named selections of broadcasts and outgoing transactions that pages, alerts, health
and commands show."""

from django.utils import timezone

from .lease import busy_wallet_ids
from .models import Broadcast, OutgoingTransaction


def interrupted_broadcasts():
    """Opened, never closed, their send's lease over, (PostgreSQL) no live broadcaster
    holding their wallet, and not the machine's to settle: a broadcast signed first is
    settled by the next run (sent again, or found) unless its inputs were spent elsewhere."""
    return (
        Broadcast.objects.filter(Broadcast.lease_over(timezone.now()), state=Broadcast.State.OPENED)
        .exclude(signed_first=True, stuck_reason="")
        .exclude(wallet_id__in=busy_wallet_ids())
    )


def needing_attention():
    """Closed broadcasts a late reply contradicted: a person must look at them."""
    return Broadcast.objects.filter(needs_attention=True)


def awaiting_approval():
    return OutgoingTransaction.objects.filter(state=OutgoingTransaction.State.AWAITING_APPROVAL)


def outgoing_needing_attention():
    return OutgoingTransaction.objects.filter(state=OutgoingTransaction.State.NEEDS_ATTENTION)
