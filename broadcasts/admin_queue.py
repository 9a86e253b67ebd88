"""The admin's "Queue an outgoing transaction" page: the form (one heading, an address box wide
enough for an address, the only wallet chosen), the user's available balance on asking, and
what happens next once queued. withdrawals.queue_withdrawal applies every rule."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from ledger import actors
from ledger.models import Account, Wallet

from . import approvals, withdrawals
from .errors import OutgoingError
from .models import OutgoingTransaction


class QueueForm(forms.Form):
    """Only the inputs; withdrawals.queue_withdrawal applies every rule."""

    user_id = forms.CharField(
        max_length=128, help_text="External user id (paid from their balance)"
    )
    wallet = forms.ModelChoiceField(Wallet.objects.active().select_related("currency"))
    address = forms.CharField(max_length=128, widget=forms.TextInput(attrs={"size": 70}))
    amount = forms.CharField(
        help_text="In currency units, e.g. 0.015 (exact; no more decimals than the currency)"
    )
    label = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        only = list(self.fields["wallet"].queryset[:2])
        if len(only) == 1:
            self.fields["wallet"].initial = only[0].pk  # nothing to choose


def available(user_id: str) -> list[str]:
    """A user's balance (what a withdrawal may take) per currency, for the queue form."""
    from ledger import services as ledger_services

    accounts = list(
        Account.objects.filter(user_id=user_id, code=Account.Code.BALANCE).select_related(
            "currency"
        )
    )
    amounts = ledger_services.balances([a.pk for a in accounts])
    return [a.currency.amount(amounts.get(a.pk, 0)) for a in accounts]


def queued_message(out: OutgoingTransaction) -> str:
    """What happens next to a withdrawal just queued: the next broadcast, or a second person."""
    what = f"{out.currency.amount(out.amount)} to {out.address} for user {out.account.user_id}"
    if out.state != OutgoingTransaction.State.AWAITING_APPROVAL:
        return f"Queued {what} for the next broadcast."
    names = approvals.who_may_approve(out)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    who = (
        f"another person with the approve permission (not you): {shown}"
        if names
        else "another person with the approve permission, and nobody else has it yet: "
        "an admin must grant it"
    )
    return (
        f"Awaiting approval: {what} is not queued for broadcast yet ({out.approval_reason}). "
        f"It needs {who}; or it can be rejected, and the amount goes back to the user's balance."
    )


def queue_view(model_admin, request):
    if not actors.allowed(request.user, withdrawals.QUEUE_PERM):
        raise PermissionDenied  # the page is the queue flow's; queue_withdrawal checks again
    # "Show the user's balance": the form again with their balance, nothing queued.
    showing = "show" in request.POST
    form = QueueForm(initial=request.POST.dict()) if showing else QueueForm(request.POST or None)
    user_id = (request.POST.get("user_id") or request.GET.get("user_id") or "").strip()
    if request.method == "POST" and not showing and form.is_valid():
        data = form.cleaned_data
        try:
            out = withdrawals.queue_withdrawal(
                data["user_id"],
                data["wallet"].currency,
                data["address"],
                data["amount"],
                by=request.user,
                wallet=data["wallet"],
                label=data["label"],
            )
        except OutgoingError as exc:
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, queued_message(out))
            return redirect("admin:broadcasts_outgoingtransaction_changelist")
    context = dict(
        model_admin.admin_site.each_context(request),
        title="Queue an outgoing transaction",
        opts=model_admin.model._meta,
        form=form,
        user_id=user_id,
        available=available(user_id) if user_id else None,
    )
    return TemplateResponse(request, "broadcasts/queue_outgoing.html", context)
