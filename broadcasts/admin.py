"""Broadcasts and outgoing transactions: read-only lists, a queueing form, and the two
close-by-hand paths for an interrupted broadcast. Every money action goes through services."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ledger.backends import BackendError
from ledger.models import Account, Wallet
from ledger.money import AmountError, to_units

from . import services
from .models import Broadcast, OutgoingTransaction

CLOSE_PERM = "broadcasts.close_broadcast_by_hand"
QUEUE_PERM = "broadcasts.queue_outgoingtransaction"


class InterruptedFilter(admin.SimpleListFilter):
    title = "interrupted"
    parameter_name = "interrupted"

    def lookups(self, request, model_admin):
        return [("yes", "interrupted"), ("attention", "needs attention")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(pk__in=services.interrupted_broadcasts().values("pk"))
        if self.value() == "attention":
            return queryset.filter(needs_attention=True)
        return queryset


class ReadOnly:
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CloseForm(forms.Form):
    method = forms.ChoiceField(choices=[], widget=forms.RadioSelect)
    txid = forms.CharField(required=False, max_length=64, help_text="For 'It reached the network'")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Stored with your name")

    def __init__(self, *args, nonce=False, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(Broadcast.CloseMethod.REACHED_NETWORK, "It reached the network"),
                   (Broadcast.CloseMethod.NEVER_LEFT, "It never left")]
        if nonce:  # only a backend with a nonce can repeat a send safely
            choices.append((Broadcast.CloseMethod.SAME_NONCE, "Retry with the same nonce"))
        self.fields["method"].choices = choices

    def clean(self):
        data = super().clean()
        if data.get("method") == Broadcast.CloseMethod.REACHED_NETWORK and not data.get("txid"):
            self.add_error("txid", "Give the txid you found on the chain (or use 'Find on chain').")
        return data


@admin.register(Broadcast)
class BroadcastAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["__str__", "wallet", "state", "attention", "output_count", "transaction_count", "total_display", "fee_display",
                    "txid_short", "opened_at", "broadcasted_at", "closed_at"]
    list_filter = ["state", "wallet", InterruptedFilter]
    search_fields = ["label", "txid"]
    list_select_related = ["wallet__currency"]
    change_form_template = "broadcasts/broadcast_change_form.html"
    fields = ["wallet", "state", "needs_attention", "sending_until", "nonce", "label", "txid", "fee", "total", "output_count", "transaction_count", "outputs",
              "network_transaction", "created_at", "opened_at", "broadcasted_at", "closed_at", "closed_by",
              "close_method", "close_reason", "last_error"]

    @admin.display(description="total", ordering="total")
    def total_display(self, obj):
        return format_html("<code>{} {}</code>", obj.wallet.currency.format(obj.total), obj.wallet.currency.code)

    @admin.display(description="attention", boolean=True, ordering="needs_attention")
    def attention(self, obj):
        return obj.needs_attention

    @admin.display(description="fee", ordering="fee")
    def fee_display(self, obj):
        return obj.wallet.currency.format(obj.fee) if obj.fee is not None else "—"

    @admin.display(description="txid")
    def txid_short(self, obj):
        return obj.txid[:16] + "…" if obj.txid else ""

    def can_close(self, request, obj):
        return (request.user.has_perm(CLOSE_PERM) and obj is not None and obj.state == Broadcast.State.OPENED
                and obj.pk in set(services.interrupted_broadcasts().values_list("pk", flat=True)))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = dict(extra_context or {}, can_close=self.can_close(request, obj),
                             interrupted=obj is not None and obj.state == Broadcast.State.OPENED,
                             in_flight=obj is not None and obj.in_flight,
                             can_acknowledge=request.user.has_perm(CLOSE_PERM))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/close/", view(self.close_view), name="broadcasts_broadcast_close"),
            path("<int:object_id>/find-on-chain/", view(self.find_view), name="broadcasts_broadcast_find"),
            path("<int:object_id>/acknowledge/", view(self.acknowledge_view), name="broadcasts_broadcast_acknowledge"),
        ] + super().get_urls()

    def _closable(self, request, object_id):
        if not request.user.has_perm(CLOSE_PERM):
            raise PermissionDenied
        return get_object_or_404(Broadcast.objects.select_related("wallet__currency"), pk=object_id)

    def find_view(self, request, object_id):
        broadcast = self._closable(request, object_id)
        url = reverse("admin:broadcasts_broadcast_close", args=[broadcast.pk])
        try:
            found = services.find_on_chain(broadcast)
        except BackendError as exc:
            messages.error(request, f"Cannot search the node's wallet: {exc}")
            return redirect(url)
        if not found:
            messages.warning(request, f"No transaction with comment {broadcast.label} in the node's wallet.")
            return redirect(url)
        if len(found) > 1:
            messages.error(request, f"Several transactions carry this comment: {', '.join(found)}. Check by hand.")
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
            services.acknowledge_attention(broadcast, request.user, reason)
        except services.CloseError as exc:
            messages.error(request, str(exc))
        else:
            self.log_change(request, broadcast, f"Acknowledged: {reason.strip()}")
            messages.success(request, f"Broadcast #{broadcast.pk} acknowledged.")
        return redirect(change_url)

    def close_view(self, request, object_id):
        broadcast = self._closable(request, object_id)
        change_url = reverse("admin:broadcasts_broadcast_change", args=[broadcast.pk])
        if broadcast.state != Broadcast.State.OPENED:
            messages.error(request, f"Broadcast #{broadcast.pk} is {broadcast.get_state_display()}: nothing to close.")
            return redirect(change_url)
        backend_has_nonce = broadcast.wallet.backend == "blockio"
        if request.method == "POST":
            form = CloseForm(request.POST, nonce=backend_has_nonce)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    if data["method"] == Broadcast.CloseMethod.REACHED_NETWORK:
                        services.close_as_broadcasted(broadcast, data["txid"], request.user, data["reason"])
                        how = f"reached the network as {broadcast.txid or data['txid'].strip().lower()}"
                    elif data["method"] == Broadcast.CloseMethod.SAME_NONCE:
                        services.retry_same_nonce(broadcast, request.user, data["reason"])
                        broadcast.refresh_from_db()
                        how = f"retried with the same nonce: reached the network as {broadcast.txid}"
                    else:
                        services.close_as_never_left(broadcast, request.user, data["reason"])
                        how = "never left; its outgoing transactions are back in the queue"
                except services.CloseError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.log_change(request, broadcast, f"Closed by hand: {how}. Reason: {data['reason'].strip()}")
                    messages.success(request, f"Broadcast #{broadcast.pk} closed by hand: {how}.")
                    return redirect(change_url)
        else:
            initial = {"txid": request.GET.get("txid", "")}
            if initial["txid"]:
                initial["method"] = Broadcast.CloseMethod.REACHED_NETWORK
            form = CloseForm(initial=initial, nonce=backend_has_nonce)
        context = dict(
            self.admin_site.each_context(request), title=f"Close {broadcast} by hand", opts=self.model._meta,
            original=broadcast, broadcast=broadcast, form=form, backend_has_nonce=backend_has_nonce,
            nonce_retry_allowed=backend_has_nonce and services.nonce_retry_allowed(broadcast),
            outputs=sorted(broadcast.outputs.items()), currency=broadcast.wallet.currency,
        )
        return TemplateResponse(request, "broadcasts/close_broadcast.html", context)


class QueueForm(forms.Form):
    user_id = forms.CharField(max_length=128, help_text="External user id (paid from their 201 balance)")
    wallet = forms.ModelChoiceField(Wallet.objects.active().select_related("currency"))
    address = forms.CharField(max_length=128)
    amount = forms.CharField(help_text="In currency units, e.g. 0.015 (exact; no more decimals than the currency)")
    label = forms.CharField(max_length=255, required=False)

    def clean(self):
        data = super().clean()
        wallet = data.get("wallet")
        if wallet is None or "amount" not in data or "address" not in data or "user_id" not in data:
            return data
        try:
            data["units"] = to_units(data["amount"], wallet.currency.decimals)
        except AmountError as exc:
            raise forms.ValidationError({"amount": str(exc)}) from None
        # Only an existing user's account: a typo must not create a new user's books.
        data["account"] = Account.objects.filter(user_id=data["user_id"].strip(), currency=wallet.currency,
                                                 code=Account.Code.BALANCE).select_related("currency").first()
        if data["account"] is None:
            raise forms.ValidationError({"user_id": f"no {wallet.currency.code} account for this user"})
        try:
            services.check_external(data["account"], data["address"], data["units"], wallet)
        except services.OutgoingError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(OutgoingTransaction)
class OutgoingTransactionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["id", "created_at", "wallet", "user", "address", "amount_display", "state", "broadcast",
                    "attempts"]
    list_filter = ["state", "wallet", "currency"]
    search_fields = ["address", "account__user_id", "broadcast__txid"]
    list_select_related = ["wallet", "currency", "account", "broadcast"]
    change_list_template = "broadcasts/outgoing_change_list.html"
    show_full_result_count = False

    @admin.display(description="user", ordering="account__user_id")
    def user(self, obj):
        return obj.account.user_id

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return format_html("<code>{} {}</code>", obj.currency.format(obj.amount), obj.currency.code)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {}, can_queue=request.user.has_perm(QUEUE_PERM))
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path("queue/", self.admin_site.admin_view(self.queue_view), name="broadcasts_outgoingtransaction_queue"),
        ] + super().get_urls()

    def queue_view(self, request):
        if not request.user.has_perm(QUEUE_PERM):
            raise PermissionDenied
        form = QueueForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                out = services.send_external(data["account"], data["address"], data["units"], wallet=data["wallet"],
                                             created_by=request.user, label=data["label"])
            except services.OutgoingError as exc:
                form.add_error(None, str(exc))
            else:
                self.log_addition(request, out, "Queued from the admin")
                messages.success(request, f"Queued {out.currency.format(out.amount)} {out.currency.code} "
                                          f"to {out.address} for user {out.account.user_id}.")
                return redirect("admin:broadcasts_outgoingtransaction_changelist")
        context = dict(self.admin_site.each_context(request), title="Queue an outgoing transaction",
                       opts=self.model._meta, form=form)
        return TemplateResponse(request, "broadcasts/queue_outgoing.html", context)
