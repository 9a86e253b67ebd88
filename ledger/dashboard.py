"""Admin banners for what needs an operator in the ledger (see cryptoadmin/registry.py).

- a deposit the node reports as conflicted: the payer's transaction was double-spent or
  replaced. Never credited, the user saw a payment that will never arrive; credited, the books
  may hold coins the wallet does not. Red until an operator checks the chain and closes it by
  hand (or it comes back);
- a wallet whose last poll failed (node down, or a reply we could not trust)."""

from django.db.models import Count, Q
from django.urls import reverse

from cryptoadmin.words import count

from .models import NetworkTransaction, Wallet


def alerts(request):
    if not request.user.is_staff:
        return []
    out = []
    conflicted = NetworkTransaction.objects.filter(
        type=NetworkTransaction.Type.DEPOSIT,
        state=NetworkTransaction.State.CONFLICTED,
    ).aggregate(
        never=Count("id", filter=Q(credited_at__isnull=True)),
        credited=Count("id", filter=Q(credited_at__isnull=False)),
    )
    if conflicted["never"] or conflicted["credited"]:
        parts = []
        if conflicted["never"]:
            parts.append(f"{count(conflicted['never'], 'conflicted deposit')} never credited")
        if conflicted["credited"]:
            parts.append(
                f"{count(conflicted['credited'], 'conflicted deposit')} already credited "
                "(the books may hold coins the wallet does not)"
            )
        out.append(
            dict(
                level="error",
                message=(
                    f"{' and '.join(parts)}: the payer's transaction was replaced or double-spent. "
                    "Check the chain and close them by hand with the reason."
                ),
                url=reverse("admin:ledger_networktransaction_changelist")
                + "?type__exact=deposit&state__exact=conflicted",
            )
        )
    failing = list(
        Wallet.objects.active().exclude(last_poll_error="").values_list("name", flat=True)[:5]
    )
    if failing:
        out.append(
            dict(
                level="warning",
                message=(
                    f"Polling failed for {'wallet' if len(failing) == 1 else 'wallets'} "
                    f"{', '.join(failing)}: see 'last poll error' on the wallet's page."
                ),
                url=reverse("admin:ledger_wallet_changelist") + "?enabled__exact=1",
            )
        )
    return out


def needs_person(request):
    """The home page's counts (cryptoadmin/home.py): flagged deposits and nodes whose last
    poll failed, each linking to the list filtered to exactly them."""
    if not request.user.is_staff:
        return []
    flagged = NetworkTransaction.objects.filter(
        type=NetworkTransaction.Type.DEPOSIT, flagged=True
    ).count()
    down = Wallet.objects.active().exclude(last_poll_error="").count()
    return [
        dict(
            key="flagged_deposits",
            title="flagged deposits",
            count=flagged,
            level="error",
            url=reverse("admin:ledger_networktransaction_changelist")
            + "?flagged__exact=1&type__exact=deposit",
        ),
        dict(
            key="nodes_down",
            title="nodes down (last poll failed)",
            count=down,
            level="error",
            url=reverse("admin:ledger_wallet_changelist") + "?polling=failing",
        ),
    ]
