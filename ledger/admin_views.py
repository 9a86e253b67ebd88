"""Custom admin pages: import unaccounted balance, reconciliation, a new receiving address."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from . import actors, imports
from .admin_lists import as_id, typed
from .backends import BackendError
from .models import Account, Transaction, Wallet
from .reconcile import (
    RECONCILE_PERM,
    Reconciliation,
    request_reconciliation,
    request_stale_after,
)


class AccountSelect(AutocompleteSelect):
    def optgroups(self, name, value, attr=None):
        # Django's widget looks the value up as an id when the form is shown again: a typed
        # text that is not one ("treasury ²") would be a 500 instead of "Unknown account".
        return super().optgroups(name, [v for v in value if as_id(v) is not None], attr)


class ImportForm(forms.Form):
    """Only the inputs; ledger.imports checks the target and the amount."""

    wallet = forms.ModelChoiceField(
        queryset=Wallet.objects.select_related("currency"),
        error_messages={"invalid_choice": "Unknown wallet."},
    )
    account = forms.ModelChoiceField(
        required=False,
        queryset=Account.objects.select_related("currency"),
        # The admin's account search (user id, account code): type "treasury" or "treasury 202".
        widget=AccountSelect(Transaction._meta.get_field("destination"), admin.site),
        help_text="The account that receives the coins whose owner the books do not know: "
        "search by user id (their balance), or a user id and an account code.",
        error_messages={"invalid_choice": "Unknown account."},
    )
    new_user = forms.RegexField(
        required=False,
        regex=r"^[A-Za-z0-9_.:@-]{1,128}$",
        label="Or a new user id",
        help_text='A user with no account yet (a fresh install\'s "treasury"): their balance '
        "account is opened with the import when you confirm.",
        error_messages={"invalid": "Use 1 to 128 letters, digits and _ . : @ -"},
    )
    expected = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if not self.errors and bool(data.get("account")) == bool(data.get("new_user")):
            raise forms.ValidationError("Choose an account, or type a new user id: one of the two.")
        return data

    def target(self):
        """The chosen account, or the new user's (unsaved until the import is confirmed)."""
        data = self.cleaned_data
        return data["account"] or imports.new_user_target(data["wallet"], data["new_user"])

    def __init__(self, data=None, *args, **kwargs):
        if data is not None and (data.get("account") or "").strip() and data.get("wallet"):
            data = data.copy()
            data["account"] = _account_from_text(data["account"], data["wallet"])
        super().__init__(data, *args, **kwargs)


def _account_from_text(text: str, wallet_id) -> str:
    """The account field as typed without the search (no JavaScript, a script): an account
    number, or a user id with an optional account code ("treasury", "treasury 202") in the
    wallet's currency. Anything else is left as typed, for the field to call unknown."""
    text = text.strip()
    if as_id(text) is not None or not typed(text):
        return text
    parts = text.split()
    code = as_id(parts[1]) if len(parts) == 2 else None
    if len(parts) > 2 or (len(parts) == 2 and code is None):
        return text
    wallet = Wallet.objects.filter(pk=as_id(wallet_id)).first() if as_id(wallet_id) else None
    if wallet is None:
        return text
    found = Account.objects.filter(
        currency_id=wallet.currency_id,
        user_id=parts[0],
        code=code if code is not None else Account.Code.BALANCE,
    ).first()
    return str(found.pk) if found else text


def import_wallet_balance_view(model_admin, request):
    if not actors.allowed(request.user, imports.IMPORT_PERM):
        raise PermissionDenied  # the page is the import flow's; its services check again
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Import wallet balance",
        "opts": model_admin.model._meta,
    }
    form = ImportForm(request.POST or None, initial={"wallet": request.GET.get("wallet")})
    if request.method == "POST" and form.is_valid():
        wallet, account = form.cleaned_data["wallet"], form.target()
        if "confirm" in request.POST and form.cleaned_data.get("expected") is not None:
            try:
                entry = imports.confirm_import(
                    wallet, account, form.cleaned_data["expected"], by=request.user
                )
            except imports.AmountChanged as exc:
                messages.warning(request, str(exc))
            except imports.NothingToImport as exc:
                messages.info(request, str(exc))
                return redirect(request.path)
            except imports.BooksExceedNode as exc:
                messages.error(request, str(exc))
                return redirect(request.path)
            except BackendError as exc:
                messages.error(request, f"The node could not be asked: {exc}")
                return redirect(request.path)
            except imports.WalletImportError as exc:
                form.add_error(None, str(exc))
                context["form"] = form
                return TemplateResponse(request, "ledger/import_wallet_balance.html", context)
            else:
                messages.success(
                    request,
                    f"{entry.label}: {wallet.currency.amount(entry.amount)} "
                    f"put on {entry.destination}.",
                )
                return redirect(reverse("admin:ledger_wallet_change", args=[wallet.pk]))
        # Preview (or preview again after the amount changed): nothing is written.
        try:
            preview = imports.preview_import(wallet, account, by=request.user)
        except imports.WalletImportError as exc:
            form.add_error(None, str(exc))
        except BackendError as exc:
            messages.error(request, f"The node could not be asked: {exc}")
        else:
            data = form.data.copy()
            data["expected"] = preview.unaccounted
            form = ImportForm(data)
            form.is_valid()
            context.update(
                preview=preview,
                currency=wallet.currency,
                wallet=wallet,
                account=account,
                fmt={
                    k: wallet.currency.amount(getattr(preview, k))
                    for k in ("node_balance", "books_balance", "uncredited", "unaccounted")
                },
            )
    context["form"] = form
    return TemplateResponse(request, "ledger/import_wallet_balance.html", context)


FIGURES = (
    "node_balance",
    "books_balance",
    "users_balance",
    "pending_outgoing",
    "fees",
    "uncredited",
    "unaccounted",
)


def _figures(result, currency) -> dict:
    fmt = {k: currency.amount(getattr(result, k)) for k in FIGURES}
    # The fees account gives what the network took: a person reads the fees paid, positive.
    fmt["fees_paid"] = currency.amount(-result.fees)
    return fmt


def reconcile_view(model_admin, request, object_id):
    """GET shows the last recorded reconciliation and any pending or failed request; it
    writes nothing and calls no node. POST (with `ledger.reconcile_wallet`) queues the full
    reconciliation for a worker and comes back here at once."""
    wallet = get_object_or_404(
        Wallet.objects.select_related("currency", "reconcile_requested_by"), pk=object_id
    )
    if not model_admin.has_view_permission(request, wallet):
        raise PermissionDenied
    can_record = actors.allowed(request.user, RECONCILE_PERM)
    if request.method == "POST":
        if request_reconciliation(wallet, by=request.user):
            messages.success(
                request,
                "Reconciliation queued: it runs in the background (it reads every address the "
                "node has); this page shows the result when it is done.",
            )
        else:
            messages.info(request, "A reconciliation of this wallet is already running.")
        return redirect(request.path)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Reconciliation: {wallet.name}",
        "opts": model_admin.model._meta,
        "original": wallet,
        "wallet": wallet,
        "can_record": can_record,
    }
    pending = wallet.reconcile_requested_at
    if pending is not None:
        context.update(
            pending_since=pending,
            pending_by=wallet.reconcile_requested_by,
            # No live worker on it any more: a new request queues it again.
            pending_stale=timezone.now() - pending > request_stale_after(),
        )
    recorded = wallet.last_reconciliation or None
    if recorded:
        result, c = Reconciliation.from_dict(recorded), wallet.currency
        context.update(result=result, fmt=_figures(result, c))
    return TemplateResponse(request, "ledger/reconcile.html", context)


class AddressForm(forms.Form):
    wallet = forms.ModelChoiceField(
        queryset=Wallet.objects.active().select_related("currency"),
        help_text="The wallet whose node makes the address (its currency is the deposit's).",
        error_messages={"invalid_choice": "Unknown or disabled wallet."},
    )
    user_id = forms.RegexField(
        regex=r"^[A-Za-z0-9_.:@-]{1,128}$",
        label="User id",
        help_text="The service's id of the user; their balance account is opened if needed.",
        error_messages={"invalid": "Use 1 to 128 letters, digits and _ . : @ -"},
    )


def give_address_view(model_admin, request):
    """Add page of Addresses: asks the chosen wallet's node for a new receiving address."""
    from .receiving import AddressRefused, give_address

    form = AddressForm(request.POST or None)
    if len(form.fields["wallet"].queryset) == 1:
        form.fields["wallet"].initial = form.fields["wallet"].queryset[0]
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            address = give_address(data["wallet"], data["user_id"], by=request.user)
        except AddressRefused as exc:
            form.add_error(None, f"{exc} [{exc.code}]")
        else:
            messages.success(request, f"{address.address} given to {data['user_id']}.")
            return redirect(reverse("admin:ledger_address_changelist") + f"?q={address.address}")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "New receiving address",
        "opts": model_admin.model._meta,
        "form": form,
    }
    return TemplateResponse(request, "ledger/address_add.html", context)
