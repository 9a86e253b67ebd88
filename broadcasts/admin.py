"""Broadcasts and outgoing transactions: read-only lists, a queueing form, and the two
close-by-hand paths for an interrupted broadcast. Every money action goes through services."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

from cryptoadmin.errors import CloseRefused
from cryptoadmin.exports import CsvExportMixin
from ledger import actors
from ledger.admin import AmountColumn, ReadOnly, amount_cell, figures_table
from ledger.admin_lists import NOTHING, IndexedSearch, ids, txid_of
from ledger.backends import BackendError
from ledger.models import Account
from ledger.money import format_units

from . import (
    admin_queue,
    admin_review,
    approvals,
    closable,
    closing,
    nonce,
    selections,
    withdrawals,
)
from .models import Broadcast, OutgoingTransaction, WithdrawalRule


class InterruptedFilter(admin.SimpleListFilter):
    title = "interrupted"
    parameter_name = "interrupted"

    def lookups(self, request, model_admin):
        return [("yes", "interrupted"), ("attention", "needs attention")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(pk__in=selections.interrupted_broadcasts().values("pk"))
        if self.value() == "attention":
            return queryset.filter(needs_attention=True)
        return queryset


class CloseForm(forms.Form):
    method = forms.ChoiceField(choices=[], widget=forms.RadioSelect)
    txid = forms.CharField(required=False, max_length=64, help_text="For 'It reached the network'")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Stored with your name"
    )

    def __init__(self, *args, nonce=False, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [
            (Broadcast.CloseMethod.REACHED_NETWORK, "It reached the network"),
            (Broadcast.CloseMethod.NEVER_LEFT, "It never left"),
        ]
        if nonce:  # only a backend with a nonce can repeat a send safely
            choices.append((Broadcast.CloseMethod.SAME_NONCE, "Retry with the same nonce"))
        self.fields["method"].choices = choices

    def clean(self):
        data = super().clean()
        if data.get("method") == Broadcast.CloseMethod.REACHED_NETWORK and not data.get("txid"):
            self.add_error("txid", "Give the txid you found on the chain (or use 'Find on chain').")
        return data


@admin.register(Broadcast)
class BroadcastAdmin(CsvExportMixin, IndexedSearch, ReadOnly, admin.ModelAdmin):
    # Outputs, the other times and who closed it are on the broadcast's page.
    list_display = [
        "__str__",
        "wallet_name",
        "state",
        "attention",
        "outgoing",
        "total_display",
        "fee_display",
        "txid_short",
        "opened",
    ]
    csv_columns = [
        ("id", lambda b: b.pk),
        ("label", lambda b: b.label),
        ("wallet", lambda b: b.wallet.name),
        ("state", lambda b: b.state),
        ("needs_attention", lambda b: "yes" if b.needs_attention else ""),
        ("outgoing", lambda b: b.transaction_count),
        ("outputs", lambda b: b.output_count),
        ("total", lambda b: format_units(b.total, b.wallet.currency.decimals)),
        ("fee", lambda b: "" if b.fee is None else format_units(b.fee, b.wallet.currency.decimals)),
        ("currency", lambda b: b.wallet.currency.code),
        ("txid", lambda b: b.txid),
        ("opened_at", lambda b: b.opened_at),
        ("broadcasted_at", lambda b: b.broadcasted_at),
        ("closed_at", lambda b: b.closed_at),
        ("closed_by", lambda b: b.closed_by or ""),
        ("close_method", lambda b: b.close_method),
        ("close_reason", lambda b: b.close_reason),
    ]
    list_filter = ["state", "wallet", InterruptedFilter]
    list_select_related = ["wallet__currency"]
    search_help_text = "An exact txid or label."

    def search_q(self, term):
        txid = txid_of(term)
        return (Q(txid=txid) if txid else NOTHING) | Q(label=term)

    change_form_template = "broadcasts/broadcast_change_form.html"
    fields = [
        "wallet",
        "state",
        "attention",
        "sending_until",
        "nonce",
        "label",
        "txid",
        "fee_display",
        "total_display",
        "signed_first",
        "signed_fee_display",
        "inputs_table",
        "stuck_reason",
        "recovered_at",
        "raw_tx",
        "output_count",
        "transaction_count",
        "outputs_table",
        "network_transaction",
        "created_at",
        "opened_at",
        "broadcasted_at",
        "closed_at",
        "closed_by",
        "close_method",
        "close_reason",
        "last_error",
    ]
    readonly_fields = [
        "attention",
        "fee_display",
        "total_display",
        "outputs_table",
        "signed_fee_display",
        "inputs_table",
    ]

    @admin.display(description="outgoing", ordering="transaction_count")
    def outgoing(self, obj):
        return obj.transaction_count

    @admin.display(description="opened", ordering="opened_at")
    def opened(self, obj):
        # Date over time: the list keeps to a 1280 px window (the seconds are on its page).
        moment = localtime(obj.opened_at)
        return format_html("{}<br>{}", moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M"))

    @admin.display(description="wallet", ordering="wallet__name")
    def wallet_name(self, obj):
        return obj.wallet.name

    @admin.display(description="total", ordering="total")
    def total_display(self, obj):
        return amount_cell(obj.total, obj.wallet.currency)

    @admin.display(description="attention", ordering="needs_attention")
    def attention(self, obj):
        # Only a broadcast that needs someone shows anything (no red cross for "no").
        if not obj.needs_attention:
            return ""
        return mark_safe('<span style="color:#ba2121;font-weight:600">⚠ needs attention</span>')

    @admin.display(description="fee", ordering="fee")
    def fee_display(self, obj):
        return amount_cell(obj.fee, obj.wallet.currency) if obj.fee is not None else "—"

    @admin.display(description="signed fee")
    def signed_fee_display(self, obj):
        if obj.signed_fee is None:
            return "—"
        return amount_cell(obj.signed_fee, obj.wallet.currency)

    @admin.display(description="coins spent")
    def inputs_table(self, obj):
        # Each coin as "txid:vout", the form the node's lockunspent and the close page use.
        if not obj.inputs:
            return "—"
        return format_html_join(mark_safe("<br>"), "<code>{}</code>", ((i,) for i in obj.inputs))

    @admin.display(description="outputs")
    def outputs_table(self, obj):
        c = obj.wallet.currency
        return figures_table(
            [
                (format_html("<code>{}</code>", a), c.amount(u))
                for a, u in sorted(obj.outputs.items())
            ]
        )

    @admin.display(description="txid")
    def txid_short(self, obj):
        if not obj.txid:
            return ""
        return format_html('<code title="{}">{}…</code>', obj.txid, obj.txid[:16])

    def can_close(self, request, obj):
        return (
            closable.may_close(request.user)
            and obj is not None
            and obj.state == Broadcast.State.OPENED
            and obj.pk in set(selections.interrupted_broadcasts().values_list("pk", flat=True))
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = dict(
            extra_context or {},
            can_close=self.can_close(request, obj),
            interrupted=obj is not None and obj.state == Broadcast.State.OPENED,
            in_flight=obj is not None and obj.in_flight,
            can_acknowledge=closable.may_close(request.user),
        )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/close/", view(self.close_view), name="broadcasts_broadcast_close"
            ),
            path(
                "<int:object_id>/find-on-chain/",
                view(self.find_view),
                name="broadcasts_broadcast_find",
            ),
            path(
                "<int:object_id>/acknowledge/",
                view(self.acknowledge_view),
                name="broadcasts_broadcast_acknowledge",
            ),
        ] + super().get_urls()

    def _closable(self, request, object_id):
        # The page itself is the close flow's: its services check again on every action.
        if not closable.may_close(request.user):
            raise PermissionDenied
        return get_object_or_404(Broadcast.objects.select_related("wallet__currency"), pk=object_id)

    def find_view(self, request, object_id):
        broadcast = self._closable(request, object_id)
        url = reverse("admin:broadcasts_broadcast_close", args=[broadcast.pk])
        try:
            found = closing.search_on_chain(broadcast, by=request.user)
        except BackendError as exc:
            messages.error(request, f"Cannot search the node's wallet: {exc}")
            return redirect(url)
        if not found:
            messages.warning(
                request,
                (
                    f"The node does not know the signed transaction {broadcast.txid}, and no "
                    if broadcast.raw_tx
                    else "No "
                )
                + f"transaction with comment {broadcast.label} is in the node's wallet.",
            )
            return redirect(url)
        if len(found) > 1:
            messages.error(
                request,
                f"Several transactions carry this comment: {', '.join(found)}. Check by hand.",
            )
        elif broadcast.raw_tx and found[0] == broadcast.txid:
            messages.success(request, f"The node knows the signed transaction {found[0]}.")
        else:
            messages.success(request, f"Found {found[0]} with comment {broadcast.label}.")
        return redirect(f"{url}?txid={found[0]}")

    def acknowledge_view(self, request, object_id):
        broadcast = self._closable(request, object_id)
        change_url = reverse("admin:broadcasts_broadcast_change", args=[broadcast.pk])
        if request.method != "POST":
            return redirect(change_url)
        reason = request.POST.get("reason", "")
        try:
            closing.acknowledge_attention(broadcast, request.user, reason)
        except CloseRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Broadcast #{broadcast.pk} acknowledged.")
        return redirect(change_url)

    def _signed_context(self, broadcast):
        """The signed transaction's outputs as the node decodes them, in coins (a broadcast
        signed first); an error in words if the node cannot say now."""
        if not broadcast.raw_tx:
            return {}
        currency = broadcast.wallet.currency
        try:
            paid = broadcast.wallet.get_backend().decode_outputs(broadcast.raw_tx)
        except (BackendError, NotImplementedError) as exc:
            return dict(signed_error=f"the node cannot decode it now: {exc}")
        return dict(
            signed_outputs=[
                (address, currency.amount(units), broadcast.outputs.get(address) == units)
                for address, units in sorted(paid.items())
            ],
            signed_fee=currency.amount(broadcast.signed_fee)
            if broadcast.signed_fee is not None
            else "",
        )

    def close_view(self, request, object_id):
        broadcast = self._closable(request, object_id)
        change_url = reverse("admin:broadcasts_broadcast_change", args=[broadcast.pk])
        if broadcast.state != Broadcast.State.OPENED:
            messages.error(
                request,
                f"Broadcast #{broadcast.pk} is {broadcast.get_state_display()}: nothing to close.",
            )
            return redirect(change_url)
        backend_has_nonce = broadcast.wallet.backend_class.supports_nonce
        if request.method == "POST":
            form = CloseForm(request.POST, nonce=backend_has_nonce)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    how = closing.close_broadcast_by_hand(
                        broadcast,
                        data["method"],
                        by=request.user,
                        reason=data["reason"],
                        txid=data["txid"],
                    )
                except CloseRefused as exc:
                    form.add_error(None, str(exc))
                else:
                    messages.success(request, f"Broadcast #{broadcast.pk} closed by hand: {how}.")
                    return redirect(change_url)
        else:
            initial = {"txid": request.GET.get("txid", "")}
            if initial["txid"]:
                initial["method"] = Broadcast.CloseMethod.REACHED_NETWORK
            form = CloseForm(initial=initial, nonce=backend_has_nonce)
        context = dict(
            self.admin_site.each_context(request),
            title=f"Close {broadcast} by hand",
            opts=self.model._meta,
            original=broadcast,
            broadcast=broadcast,
            form=form,
            backend_has_nonce=backend_has_nonce,
            nonce_retry_allowed=backend_has_nonce and nonce.nonce_retry_allowed(broadcast),
            outputs=sorted(broadcast.outputs.items()),
            currency=broadcast.wallet.currency,
            **self._signed_context(broadcast),
        )
        return TemplateResponse(request, "broadcasts/close_broadcast.html", context)


approve_outgoing = admin_review.action("approve")
reject_outgoing = admin_review.action("reject")
cancel_outgoing = admin_review.action("cancel")


@admin.register(WithdrawalRule)
class WithdrawalRuleAdmin(admin.ModelAdmin):
    """Edited here, recorded by django-auditlog (Log entries) with who and before/after."""

    list_display = ["currency", "minimum", "approval", "daily", "fee_cap", "fee_policy"]
    list_select_related = ["currency"]

    @admin.display(description="minimum amount", ordering="minimum_amount")
    def minimum(self, obj):
        return amount_cell(obj.minimum_amount, obj.currency)

    @admin.display(description="approval above", ordering="approval_above")
    def approval(self, obj):
        return "—" if obj.approval_above is None else amount_cell(obj.approval_above, obj.currency)

    @admin.display(description="daily limit", ordering="daily_limit")
    def daily(self, obj):
        return "—" if obj.daily_limit is None else amount_cell(obj.daily_limit, obj.currency)

    @admin.display(description="fee cap per broadcast", ordering="max_fee")
    def fee_cap(self, obj):
        return "—" if obj.max_fee is None else amount_cell(obj.max_fee, obj.currency)

    @admin.display(description="fee rate or target")
    def fee_policy(self, obj):
        if obj.fee_rate is not None:
            return f"{obj.currency.amount(obj.fee_rate)} per 1000 bytes"
        if obj.confirmation_target is not None:
            return f"confirm within {obj.confirmation_target} blocks"
        return "the node's default"


@admin.register(OutgoingTransaction)
class OutgoingTransactionAdmin(
    AmountColumn, CsvExportMixin, IndexedSearch, ReadOnly, admin.ModelAdmin
):
    # Attempts, refusals and the decisions' details are on the detail page.
    list_display = [
        "id",
        "created",
        "wallet_name",
        "user",
        "short_address",
        "amount_display",
        "state",
        "broadcast_no",
        "why",
    ]
    csv_columns = [
        ("id", lambda o: o.pk),
        ("created_at", lambda o: o.created_at),
        ("wallet", lambda o: o.wallet.name if o.wallet_id else ""),
        ("user", lambda o: o.account.user_id),
        ("address", lambda o: o.address),
        ("amount", lambda o: format_units(o.amount, o.currency.decimals)),
        ("currency", lambda o: o.currency.code),
        ("state", lambda o: o.state),
        ("broadcast", lambda o: o.broadcast_id or ""),
        ("attempts", lambda o: o.attempts),
        ("refusals", lambda o: o.refusals),
        ("label", lambda o: o.label),
        ("approved_by", lambda o: o.approved_by or ""),
        ("closed_by", lambda o: o.closed_by or ""),
        ("close_reason", lambda o: o.close_reason),
        ("last_error", lambda o: o.last_error),
    ]
    list_filter = ["state", "wallet", "currency"]
    actions = [approve_outgoing, reject_outgoing, cancel_outgoing]
    exclude = ["amount"]  # shown in coins by amount_display
    readonly_fields = [
        "life",
        "amount_display",
        "approval_reason",
        "approved_by",
        "approved_at",
        "closed_by",
        "closed_at",
        "close_reason",
        "return_entry",
        "refusals",
        "last_error",
    ]

    def has_approve_permission(self, request):
        return actors.allowed(request.user, approvals.APPROVE_PERM)

    def has_cancel_permission(self, request):
        return actors.allowed(request.user, approvals.CANCEL_PERM)

    @admin.display(description="why")
    def why(self, obj):
        if obj.state in (OutgoingTransaction.State.REJECTED, OutgoingTransaction.State.CANCELLED):
            text = f"{obj.close_reason} ({obj.closed_by})"
        elif obj.state == OutgoingTransaction.State.NEEDS_ATTENTION:
            text = obj.last_error
        elif obj.state == OutgoingTransaction.State.AWAITING_APPROVAL:
            text = obj.approval_reason
        else:
            text = f"approved by {obj.approved_by}" if obj.approved_by_id else ""
        if len(text) <= 60:
            return text
        return format_html('<span title="{}">{}…</span>', text, text[:59])

    @admin.display(description="wallet", ordering="wallet__name")
    def wallet_name(self, obj):
        return obj.wallet.name if obj.wallet_id else "—"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        # To the minute in the list (the seconds are on the detail page): room for the address.
        return date_format(localtime(obj.created_at), "SHORT_DATETIME_FORMAT")

    @admin.display(description="address", ordering="address")
    def short_address(self, obj):
        # Whole (wrapped in a narrow window): an operator compares it character by character.
        return format_html('<code style="overflow-wrap:anywhere">{}</code>', obj.address)

    # wallet__currency: the wallet column's text names its currency (one query per row without).
    list_select_related = [
        "wallet__currency",
        "currency",
        "account",
        "broadcast",
        "approved_by",
        "closed_by",
    ]
    change_list_template = "broadcasts/outgoing_change_list.html"
    search_help_text = "An exact address, user id or broadcast txid."

    def search_q(self, term):
        txid = txid_of(term)
        by_txid = Q(broadcast_id__in=ids(Broadcast.objects.filter(txid=txid))) if txid else NOTHING
        return (
            Q(address=term) | Q(account_id__in=ids(Account.objects.filter(user_id=term))) | by_txid
        )

    @admin.display(description="broadcast", ordering="broadcast_id")
    def broadcast_no(self, obj):
        # Its number, linking to its page (the node's label is on that page): room for the why.
        if not obj.broadcast_id:
            return "—"
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:broadcasts_broadcast_change", args=[obj.broadcast_id]),
            obj.broadcast_id,
        )

    @admin.display(description="user", ordering="account__user_id")
    def user(self, obj):
        return obj.account.user_id

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(
            extra_context or {}, can_queue=actors.allowed(request.user, withdrawals.QUEUE_PERM)
        )
        return super().changelist_view(request, extra_context)

    change_form_template = "broadcasts/outgoing_change_form.html"

    @admin.display(description="its life")
    def life(self, obj):
        return admin_review.life(obj)

    def get_fieldsets(self, request, obj=None):
        rest = [f for f in self.get_fields(request, obj) if f != "life"]
        return [(None, {"fields": ["life"]}), ("Details", {"fields": rest})]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        out = self.get_object(request, object_id)
        decisions = admin_review.buttons(request, out) if out is not None else []
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "decisions": decisions}
        )

    def get_urls(self):
        return [
            path(
                "queue/",
                self.admin_site.admin_view(self.queue_view),
                name="broadcasts_outgoingtransaction_queue",
            ),
            path(
                "<int:object_id>/decide/<str:verb>/",
                self.admin_site.admin_view(
                    lambda r, object_id, verb: admin_review.decide_view(self, r, object_id, verb)
                ),
                name="broadcasts_outgoingtransaction_decide",
            ),
        ] + super().get_urls()

    def queue_view(self, request):
        return admin_queue.queue_view(self, request)
