"""Admin banner while any broadcast is interrupted, and a home-page panel."""

from django.urls import reverse

from cryptoadmin.words import count as counted
from cryptoadmin.words import verb

from .models import Broadcast, OutgoingTransaction
from .selections import (
    awaiting_approval,
    interrupted_broadcasts,
    late_replies,
    lost_broadcasts,
    needing_attention,
    outgoing_needing_attention,
)

# Each banner: how many rows need a person, what it says of n rows, and the admin list showing them.
BANNERS = [
    (
        interrupted_broadcasts,
        lambda n: (
            f"{counted(n, 'interrupted broadcast')}: broadcasting is stopped for their wallet "
            "until an operator checks the chain and closes them by hand."
        ),
        "admin:broadcasts_broadcast_changelist",
        "?interrupted=yes",
    ),
    (
        lost_broadcasts,
        lambda n: (
            f"{counted(n, 'sent broadcast')} lost to another transaction that confirmed: "
            f"{verb(n, 'its', 'their')} booking was reversed and {verb(n, 'its', 'their')} "
            "withdrawals are back in the queue, paid again only by a transaction conflicting "
            "with every earlier one (see the last error; if the winner is not ours, the wallet "
            "paid it)."
        ),
        "admin:broadcasts_broadcast_changelist",
        "?interrupted=attention",
    ),
    (
        late_replies,
        lambda n: (
            f"{counted(n, 'broadcast')} {verb(n, 'needs', 'need')} attention: the node's reply "
            "came after a close by hand (see their last error; a payment may have been made "
            "twice)."
        ),
        "admin:broadcasts_broadcast_changelist",
        "?interrupted=attention",
    ),
    (
        outgoing_needing_attention,
        lambda n: (
            f"{counted(n, 'outgoing transaction')} {verb(n, 'needs', 'need')} attention: the node "
            f"refused {verb(n, 'it', 'them')} {OutgoingTransaction.MAX_REFUSALS} times and "
            f"{verb(n, 'it', 'they')} left the queue (see the last error; cancel to give the "
            "money back)."
        ),
        "admin:broadcasts_outgoingtransaction_changelist",
        "?state__exact=needs_attention",
    ),
]


def alerts(request):
    out = []
    for rows, text, changelist, query in BANNERS:
        n = rows().count()
        if n:
            out.append(dict(level="error", message=text(n), url=reverse(changelist) + query))
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


# The home page's counts (cryptoadmin/home.py): key, title, selection, list and its filter.
NEEDS_PERSON = [
    (
        "awaiting_approval",
        "withdrawals awaiting approval",
        awaiting_approval,
        "admin:broadcasts_outgoingtransaction_changelist",
        "?state__exact=awaiting_approval",
        "warning",
    ),
    (
        "outgoing_attention",
        "withdrawals needing attention",
        outgoing_needing_attention,
        "admin:broadcasts_outgoingtransaction_changelist",
        "?state__exact=needs_attention",
        "error",
    ),
    (
        "interrupted_broadcasts",
        "interrupted broadcasts",
        interrupted_broadcasts,
        "admin:broadcasts_broadcast_changelist",
        "?interrupted=yes",
        "error",
    ),
    (
        "broadcasts_attention",
        "broadcasts needing attention",
        needing_attention,
        "admin:broadcasts_broadcast_changelist",
        "?interrupted=attention",
        "error",
    ),
]


def needs_person(request):
    if not request.user.has_perm("broadcasts.view_outgoingtransaction"):
        return []
    return [
        dict(key=key, title=title, count=rows().count(), url=reverse(view) + query, level=level)
        for key, title, rows, view, query, level in NEEDS_PERSON
    ]
