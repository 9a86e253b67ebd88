"""What a person sees before a withdrawal decision moves money, and a withdrawal's whole life.

Approve, reject and cancel (a list action on several, or the buttons of one withdrawal's page)
first show a review page: how many, the total in coins, each destination and user, and the fee
to expect; only its POST with `confirm` calls the services (broadcasts.approvals), one
conditional UPDATE per row."""

from __future__ import annotations

from collections import defaultdict

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from cryptoadmin.words import count
from ledger import actors
from ledger.models import NetworkTransaction
from ledger.network_display import with_confirmations_shown

from . import approvals
from .errors import DecisionError
from .models import Broadcast, OutgoingTransaction

S = OutgoingTransaction.State
VERBS = {
    "approve": dict(
        decide=approvals.approve,
        perm=approvals.APPROVE_PERM,
        states=(S.AWAITING_APPROVAL,),
        reason=False,
        title="Approve",
        button="Approve: send with the next broadcast",
        done="approved",
    ),
    "reject": dict(
        decide=approvals.reject,
        perm=approvals.CANCEL_PERM,
        states=(S.AWAITING_APPROVAL,),
        reason=True,
        title="Reject",
        button="Reject and give the money back",
        done="rejected",
    ),
    "cancel": dict(
        decide=approvals.cancel,
        perm=approvals.CANCEL_PERM,
        states=OutgoingTransaction.STOPPABLE_STATES,
        reason=True,
        title="Cancel",
        button="Cancel and give the money back",
        done="cancelled",
    ),
}


class ReviewForm(forms.Form):
    confirm = forms.CharField(widget=forms.HiddenInput, initial="1")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Stored with your name; the user's support sees it.",
    )

    def __init__(self, *args, needs_reason=True, **kwargs):
        super().__init__(*args, **kwargs)
        if not needs_reason:
            del self.fields["reason"]


def fee_estimate(rows, verb: str) -> str:
    if verb != "approve":
        return "No network fee: nothing is sent; each amount goes back to its user's balance."
    parts = []
    for wallet in {r.wallet for r in rows}:
        last = Broadcast.objects.filter(wallet=wallet, fee__isnull=False).order_by("-id").first()
        if last is None:
            parts.append(f"{wallet.name}: known when its next broadcast is built (none yet)")
        else:
            parts.append(
                f"{wallet.name}: about {wallet.currency.amount(last.fee)} for its next "
                "broadcast (the last one's fee), shared by every withdrawal in it"
            )
    return "; ".join(parts) + "."


def summary(rows, verb: str) -> dict:
    totals = defaultdict(int)
    for r in rows:
        totals[r.currency] += r.amount
    return {
        "rows": rows,
        "count": count(len(rows), "withdrawal"),
        "totals": [c.amount(t) for c, t in sorted(totals.items(), key=lambda kv: kv[0].code)],
        "destinations": len({r.address for r in rows}),
        "fee": fee_estimate(rows, verb),
    }


def review(model_admin, request, queryset, verb: str, *, back=None):
    """The review page, or (POST with confirm, a valid reason) the decisions: None for a list
    action (back to the list), a redirect to `back` for one withdrawal's page."""
    spec = VERBS[verb]
    if not actors.allowed(request.user, spec["perm"]):
        raise PermissionDenied  # the page is the flow's; the service checks again
    rows = list(queryset.select_related("currency", "account", "wallet__currency"))
    bound = request.method == "POST" and "confirm" in request.POST
    form = ReviewForm(request.POST if bound else None, needs_reason=spec["reason"])
    if bound and form.is_valid():
        _decide(model_admin, request, rows, spec, form.cleaned_data.get("reason", ""))
        return redirect(back) if back else None
    title = f"{spec['title']} {count(len(rows), 'withdrawal')}"
    context = {
        **model_admin.admin_site.each_context(request),
        **summary(rows, verb),
        "title": title,
        "opts": model_admin.model._meta,
        "form": form,
        "verb": verb,
        "button": spec["button"],
        "action": request.POST.get("action", ""),
        "selected": [r.pk for r in rows] if not back else [],
        "back": back,
    }
    return TemplateResponse(request, "broadcasts/outgoing_review.html", context)


def _decide(model_admin, request, rows, spec, reason):
    done = 0
    for out in rows:
        try:
            if spec["reason"]:
                spec["decide"](out, request.user, reason)
            else:
                spec["decide"](out, request.user)
        except DecisionError as exc:
            messages.error(request, str(exc))
        else:
            done += 1
            text = spec["done"].capitalize() + (f": {reason}" if reason else "")
            model_admin.log_change(request, out, text)
    if done:
        tail = "; the amounts are back on the users' balances." if spec["reason"] else "."
        messages.success(request, f"{count(done, 'withdrawal')} {spec['done']}{tail}")


def decide_view(model_admin, request, object_id, verb):
    if verb not in VERBS:
        raise PermissionDenied
    out = get_object_or_404(OutgoingTransaction, pk=object_id)
    back = reverse("admin:broadcasts_outgoingtransaction_change", args=[out.pk])
    return review(
        model_admin, request, OutgoingTransaction.objects.filter(pk=out.pk), verb, back=back
    )


def buttons(request, out) -> list[tuple[str, str]]:
    """(label, url) of the decisions this person may take on this withdrawal now."""
    return [
        (spec["title"], reverse("admin:broadcasts_outgoingtransaction_decide", args=[out.pk, verb]))
        for verb, spec in VERBS.items()
        if out.state in spec["states"] and actors.allowed(request.user, spec["perm"])
    ]


def _entry(entry):
    if entry is None:
        return ""
    return format_html(
        ' (<a href="{}">ledger entry #{}</a>)',
        reverse("admin:ledger_transaction_change", args=[entry.pk]),
        entry.pk,
    )


def life(out) -> str:
    """The withdrawal's life as a small table: requested, approval, broadcast, outcome."""
    rows = [("requested", _requested(out))]
    if out.approval_reason:
        rows.append(("needed approval", out.approval_reason))
    if out.approved_by_id:
        rows.append(("approved", f"by {out.approved_by} at {out.approved_at:%Y-%m-%d %H:%M:%S}"))
    if out.broadcast_id:
        rows.append(("broadcast", _broadcast(out)))
    if out.return_entry_id:
        rows.append(
            (
                out.get_state_display(),
                format_html(
                    "by {} at {}: {}{}",
                    out.closed_by,
                    out.closed_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    out.close_reason,
                    _entry(out.return_entry),
                ),
            )
        )
    if out.last_error:
        rows.append(("last refusal", f"{out.last_error} ({out.refusals} so far)"))
    rows.append(("now", out.get_state_display()))
    return format_html(
        '<table class="figures" id="withdrawal-life">{}</table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
    )


def _requested(out):
    return format_html(
        '{} by {} for <a href="{}">{}</a>: {} to <code>{}</code>{}',
        out.created_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
        out.created_by or "the API",
        reverse("person", args=[out.account.user_id]),
        out.account.user_id,
        out.currency.amount(out.amount),
        out.address,
        _entry(out.lock_entry),
    )


def _broadcast(out) -> str:
    b = out.broadcast
    c = out.currency
    seen = (
        with_confirmations_shown(NetworkTransaction.objects.all())
        .filter(currency_id=b.currency_id if hasattr(b, "currency_id") else c.pk, txid=b.txid)
        .first()
        if b.txid
        else None
    )
    share = b.fee_share(out.amount)
    return format_html(
        '<a href="{}">broadcast #{}</a>, {}{}{}{}',
        reverse("admin:broadcasts_broadcast_change", args=[b.pk]),
        b.pk,
        b.get_state_display(),
        format_html(", txid <code>{}</code>", b.txid) if b.txid else "",
        format_html(", {} confirmations", seen.confirmations_shown) if seen else "",
        format_html(", fee share about {}", c.amount(share)) if share is not None else "",
    )


def action(verb):
    spec = VERBS[verb]

    @admin.action(
        description=f"{spec['title']}…",
        permissions=["approve" if verb == "approve" else "cancel"],
    )
    def run(model_admin, request, queryset):
        return review(model_admin, request, queryset, verb)

    run.__name__ = f"{verb}_outgoing"
    return run
