"""Admin banners for what needs an operator in the ledger (see cryptoadmin/registry.py).

- a deposit the node reports as conflicted and that was never credited: the payer's
  transaction was double-spent or replaced, so the user saw a payment that will never arrive;
  red until an operator checks the chain and closes it by hand (or it comes back);
- a wallet whose last poll failed (node down, or a reply we could not trust)."""
from django.urls import reverse

from .models import NetworkTransaction, Wallet


def alerts(request):
    if not request.user.is_staff:
        return []
    out = []
    conflicted = NetworkTransaction.objects.filter(
        type=NetworkTransaction.Type.DEPOSIT, state=NetworkTransaction.State.CONFLICTED, credited_at__isnull=True,
    ).count()
    if conflicted:
        out.append(dict(
            level="error",
            message=(f"{conflicted} conflicted deposit(s) never credited: the payer's transaction was replaced "
                     "or double-spent. Check the chain and close them by hand with the reason."),
            url=reverse("admin:ledger_networktransaction_changelist") + "?type__exact=deposit&state__exact=conflicted",
        ))
    failing = list(Wallet.objects.filter(enabled=True).exclude(last_poll_error="").values_list("name", flat=True)[:5])
    if failing:
        out.append(dict(
            level="warning",
            message=f"Polling failed for wallet(s) {', '.join(failing)}: see 'last poll error' on the wallet's page.",
            url=reverse("admin:ledger_wallet_changelist") + "?enabled__exact=1",
        ))
    return out
