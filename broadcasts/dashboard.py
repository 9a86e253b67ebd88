"""Admin banner while any broadcast is interrupted, and a home-page panel."""

from django.urls import reverse

from cryptoadmin.words import count as counted
from cryptoadmin.words import verb

from .models import Broadcast, OutgoingTransaction
from .services import (
    awaiting_approval,
    interrupted_broadcasts,
    needing_attention,
    outgoing_needing_attention,
)


def alerts(request):
    out = []
    count = interrupted_broadcasts().count()
    if count:
        out.append(
            dict(
                level="error",
                message=(
                    f"{counted(count, 'interrupted broadcast')}: broadcasting is stopped for "
                    "their wallet until an operator checks the chain and closes them by hand."
                ),
                url=reverse("admin:broadcasts_broadcast_changelist") + "?interrupted=yes",
            )
        )
    late = needing_attention().count()
    if late:
        out.append(
            dict(
                level="error",
                message=(
                    f"{counted(late, 'broadcast')} {verb(late, 'needs', 'need')} attention: the "
                    "node's reply came after a close by hand (see their last error; a payment may "
                    "have been made twice)."
                ),
                url=reverse("admin:broadcasts_broadcast_changelist") + "?interrupted=attention",
            )
        )
    refused = outgoing_needing_attention().count()
    if refused:
        out.append(
            dict(
                level="error",
                message=(
                    f"{counted(refused, 'outgoing transaction')} "
                    f"{verb(refused, 'needs', 'need')} attention: the node refused "
                    f"{verb(refused, 'it', 'them')} {OutgoingTransaction.MAX_REFUSALS} times and "
                    f"{verb(refused, 'it', 'they')} left the queue (see the last error; "
                    "cancel to give the money back)."
                ),
                url=reverse("admin:broadcasts_outgoingtransaction_changelist")
                + "?state=needs_attention",
            )
        )
    return out


def panels(request):
    if not request.user.has_perm("broadcasts.view_broadcast"):
        return []
    from django.db.models import Count

    queued = OutgoingTransaction.objects.filter(state=OutgoingTransaction.State.QUEUED).aggregate(
        n=Count("id")
    )
    return [
        dict(
            title="Broadcasts",
            template="broadcasts/panel.html",
            context={
                "queued": queued["n"],
                "interrupted": interrupted_broadcasts().count(),
                "awaiting_approval": awaiting_approval().count(),
                "outgoing_attention": outgoing_needing_attention().count(),
                "recent": Broadcast.objects.select_related("wallet__currency")[:5],
            },
        )
    ]
