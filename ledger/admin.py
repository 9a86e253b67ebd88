"""Ledger admin: configuration (currencies, wallets) is editable; the books are read-only."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from cryptoadmin.exports import CsvExportMixin
from cryptoadmin.words import count

from . import actors, operator
from . import network_display as shown
from .actors import people_actions
from .admin_lists import NOTHING, IndexedSearch, InputFilter, as_id, ids, txid_of
from .models import Account, Address, Currency, NetworkTransaction, Transaction
from .money import format_units


def amount_cell(units, currency):
    """An amount in a list or on a detail page: money.format_amount, kept on one line."""
    return format_html('<span class="amount">{}</span>', currency.amount(units))


class AmountColumn:
    """An admin's `amount_display` column and detail field: a row's `amount` in its `currency`."""

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return amount_cell(obj.amount, obj.currency)


def figures_table(rows):
    """[(label, value)] as a small table on a detail page (instead of raw JSON)."""
    if not rows:
        return "—"
    return format_html(
        '<table class="figures">{}</table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
    )


class ReadOnly:
    """Rows nobody adds, changes or deletes in the admin: viewable with view permission.
    The one home of this rule for every app's admin (ledger, broadcasts, ops)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    """Append-only rows: viewable by anyone with view permission, never edited here."""


@admin.register(Currency)
class CurrencyAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "decimals",
        "enabled",
        "crediting_threshold",
        "polling_threshold",
        "network",
    ]
    list_filter = ["enabled", "network"]

    def get_readonly_fields(self, request, obj=None):
        # Changing decimals after amounts exist would rescale every stored amount.
        return ["decimals"] if obj and obj.transactions.exists() else []


def _user_accounts(term: str) -> list:
    return ids(Account.objects.filter(user_id=term))


@admin.register(Account)
class AccountAdmin(IndexedSearch, ReadOnlyAdmin):
    ordering = ["id"]  # the primary key: a stable page order at any size
    list_display = ["id", "currency", "code", "user_id", "wallet", "balance", "created_at"]
    list_filter = ["currency", "code"]
    list_select_related = ["currency", "wallet__currency", "running_total"]
    # Also the account picker's search (the import form): "treasury", "treasury 202".
    search_help_text = "An exact user id, a user id and an account code, or an account id."

    def search_q(self, term):
        by_user = Q(user_id=term)
        user, _, code = term.rpartition(" ")
        if user.strip() and as_id(code) is not None:
            by_user |= Q(user_id=user.strip(), code=as_id(code))
        return by_user | (Q(pk=as_id(term)) if as_id(term) is not None else NOTHING)

    @admin.display(description="balance", ordering="running_total__balance")
    def balance(self, obj):
        # The database's running total (no row: nothing ever moved, zero).
        total = getattr(obj, "running_total", None)
        return amount_cell(total.balance if total else 0, obj.currency)


@admin.register(Address)
class AddressAdmin(IndexedSearch, ReadOnlyAdmin):
    list_display = ["address", "currency", "kind", "wallet", "account", "label", "created_at"]
    list_filter = ["currency", "kind"]
    list_select_related = ["currency", "wallet__currency", "account__currency"]
    search_help_text = "An exact address or user id."

    def search_q(self, term):
        return Q(address=term) | Q(account_id__in=_user_accounts(term))

    def has_add_permission(self, request):
        from .receiving import ADDRESS_PERM

        return actors.allowed(request.user, ADDRESS_PERM)

    def add_view(self, request, form_url="", extra_context=None):
        # Added by asking the node (a user id and a wallet), never typed in by hand.
        if not self.has_add_permission(request):
            raise PermissionDenied
        from . import admin_views

        return admin_views.give_address_view(self, request)


class UserFilter(InputFilter):
    title = "user id"
    parameter_name = "user"

    def filter_q(self, value):
        accounts = _user_accounts(value)
        return Q(source_id__in=accounts) | Q(destination_id__in=accounts)


class AccountFilter(InputFilter):
    title = "account id"
    parameter_name = "account"

    def filter_q(self, value):
        account = as_id(value)
        if account is None:
            return NOTHING
        return Q(source_id=account) | Q(destination_id=account)


@admin.register(Transaction)
class TransactionAdmin(CsvExportMixin, IndexedSearch, ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "kind",
        "amount_units",
        "source",
        "destination",
        "txid",
        "short_label",
    ]
    csv_columns = [
        ("id", lambda t: t.pk),
        ("created_at", lambda t: t.created_at),
        ("kind", lambda t: t.kind),
        ("amount", lambda t: format_units(t.amount, t.currency.decimals)),
        ("currency", lambda t: t.currency.code),
        ("source", lambda t: t.source),
        ("destination", lambda t: t.destination),
        ("txid", lambda t: t.network_transaction.txid if t.network_transaction_id else ""),
        ("label", lambda t: t.label),
    ]
    # No date_hierarchy: its year links are a DISTINCT over every row's date.
    list_filter = ["kind", "currency", "created_at", UserFilter, AccountFilter]
    search_help_text = "An exact txid, user id or receiving address."
    list_select_related = [
        "currency",
        "source__currency",
        "destination__currency",
        "network_transaction",
        "source__wallet",
        "destination__wallet",
    ]
    exclude = ["amount"]  # shown in coins by amount_units
    readonly_fields = ["amount_units"]

    def search_q(self, term):
        txid = txid_of(term)
        by_txid = (
            Q(network_transaction_id__in=ids(NetworkTransaction.objects.filter(txid=txid)))
            if txid
            else NOTHING
        )
        accounts = _user_accounts(term)
        return (
            by_txid
            | Q(source_id__in=accounts)
            | Q(destination_id__in=accounts)
            | Q(address_id__in=ids(Address.objects.filter(address=term)))
        )

    @admin.display(description="amount", ordering="amount")
    def amount_units(self, obj):
        return amount_cell(obj.amount, obj.currency)

    @admin.display(description="txid")
    def txid(self, obj):
        if not obj.network_transaction_id:
            return ""
        txid = obj.network_transaction.txid
        return format_html('<code title="{}">{}…</code>', txid, txid[:16])

    @admin.display(description="label", ordering="label")
    def short_label(self, obj):
        return _short(obj.label, 48)


def _short(text, limit):
    """Long free text in a list: cut, the whole of it on hover (and on the detail page)."""
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])


def _totals(rows) -> list[str]:
    """Each currency's total of the rows' recorded amounts, in coins."""
    sums = {}
    for r in rows:
        if r.amount:
            sums[r.currency] = sums.get(r.currency, 0) + r.amount
    return [c.amount(t) for c, t in sorted(sums.items(), key=lambda kv: kv[0].code)]


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("1h", "open longer than an hour")]

    def queryset(self, request, queryset):
        if self.value() == "1h":
            return queryset.stuck()
        return queryset


class CloseByHandForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="What you checked on the chain and why this is closed by hand.",
    )


@admin.register(NetworkTransaction)
class NetworkTransactionAdmin(AmountColumn, CsvExportMixin, IndexedSearch, ReadOnlyAdmin):
    # What an operator looks for first; last checked, block and reasons are on the detail page.
    list_display = [
        "short_txid",
        "wallet_name",
        "type",
        "amount_display",
        "state",
        "confirmations_of",
        "paid_to",
        "age",
        "flag",
        "error",
    ]
    csv_columns = [
        ("txid", lambda r: r.txid),
        ("wallet", lambda r: r.wallet.name),
        ("type", lambda r: r.type),
        ("amount", lambda r: format_units(r.amount, r.currency.decimals) if r.amount else ""),
        ("currency", lambda r: r.currency.code),
        ("state", lambda r: r.state),
        ("confirmations", lambda r: r.confirmations_shown),
        ("users", lambda r: " ".join(user for user, _, _ in shown.paid(r))),
        ("addresses", lambda r: " ".join(address for _, address, _ in shown.paid(r))),
        ("ledger entries", lambda r: " ".join(str(e.pk) for e in r.ledger_entries.all())),
        ("opened_at", lambda r: r.opened_at),
        ("last_checked_at", lambda r: r.last_checked_at),
        ("flagged", lambda r: "yes" if r.flagged else ""),
        ("flag_reason", lambda r: r.flag_reason),
        ("last_error", lambda r: r.last_error),
    ]
    list_filter = ["currency", "type", "state", StuckFilter, "flagged"]
    list_select_related = ["currency", "wallet", "paid_address__account"]
    ordering = ["-opened_at"]
    # Shown by amount_display (coins) and flag (nothing unless flagged: no red cross for "no").
    exclude = ["amount", "flagged"]
    readonly_fields = ["amount_display", "flag", "entries"]
    object_history_template = "ledger/networktransaction_history.html"
    search_help_text = "An exact txid, or one of our addresses it paid."

    def search_q(self, term):
        txid = txid_of(term)
        paid = Transaction.objects.filter(
            address_id__in=ids(Address.objects.filter(address=term))
        ).values_list("network_transaction_id", flat=True)
        return (Q(txid=txid) if txid else NOTHING) | Q(pk__in=list(paid[:1000]))

    actions = ["check_now", "close_by_hand"]
    change_form_template = "ledger/networktransaction_change_form.html"

    @admin.display(description="txid", ordering="txid")
    def short_txid(self, obj):
        # Ten characters tell rows apart; the whole on hover (the list fits 1280 px).
        return format_html('<code title="{}">{}…</code>', obj.txid, obj.txid[:10])

    def get_queryset(self, request):
        # A mined row's confirmations follow from its wallet's tip (not rewritten per block); the
        # entries say whom it paid.
        return shown.with_confirmations_shown(super().get_queryset(request)).prefetch_related(
            shown.ENTRIES
        )

    @admin.display(description="wallet", ordering="wallet__name")
    def wallet_name(self, obj):
        return obj.wallet.name

    @admin.display(description="confirmations", ordering="confirmations_shown")
    def confirmations_of(self, obj):
        return shown.confirmations_cell(obj)

    @admin.display(description="paid")
    def paid_to(self, obj):
        return shown.paid_cell(obj)

    @admin.display(description="ledger entries (whom it paid)")
    def entries(self, obj):
        return shown.entries_table(obj)

    def history_view(self, request, object_id, extra_context=None):
        row = self.get_object(request, object_id)
        timeline = shown.timeline(row, people_actions(row)) if row is not None else []
        return super().history_view(
            request, object_id, {**(extra_context or {}), "timeline": timeline}
        )

    @admin.display(description="age", ordering="opened_at")
    def age(self, obj):
        return timesince(obj.opened_at, depth=1)

    @admin.display(description="flagged", ordering="flagged")
    def flag(self, obj):
        # Only a flag is a signal: an unflagged row shows nothing (no red cross for "no").
        if not obj.flagged:
            return ""
        return format_html(
            '<span class="flagged" title="{}" style="color:#ba2121;font-weight:600">'
            "⚑ flagged</span>",
            obj.flag_reason or "flagged for an operator",
        )

    @admin.display(description="last error")
    def error(self, obj):
        return _short(obj.last_error, 40)

    def has_check_permission(self, request):
        return actors.allowed(request.user, operator.CHECK_PERM)

    def has_close_permission(self, request):
        return actors.allowed(request.user, operator.CLOSE_PERM)

    @admin.action(description="Check now against the node", permissions=["check"])
    def check_now(self, request, queryset):
        from .backends import BackendError

        try:
            summary = operator.check_now(queryset, by=request.user)
        except BackendError as exc:
            self.message_user(request, f"The node could not be asked: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Checked: {summary.for_people()}.")

    @admin.action(description="Close by hand…", permissions=["close"])
    def close_by_hand(self, request, queryset):
        return self._close_view(request, list(queryset.values_list("pk", flat=True)))

    def close_view(self, request, object_id):
        return self._close_view(request, [object_id])

    def _close_view(self, request, ids):
        from cryptoadmin.errors import CloseRefused

        if not self.has_close_permission(request):
            # The page is the close flow's; operator.close_transactions_by_hand checks again.
            raise PermissionDenied
        rows = list(NetworkTransaction.objects.filter(pk__in=ids).select_related("currency"))
        form = CloseByHandForm(request.POST if "reason" in request.POST else None)
        if form.is_valid():
            try:
                closed = operator.close_transactions_by_hand(
                    [r.pk for r in rows], by=request.user, reason=form.cleaned_data["reason"]
                )
            except CloseRefused as exc:
                form.add_error("reason", str(exc))
            else:
                n = len(closed)
                self.message_user(
                    request, f"Closed {n} network transaction{'s' if n != 1 else ''} by hand."
                )
                return redirect(reverse("admin:ledger_networktransaction_changelist"))
        return TemplateResponse(
            request,
            "ledger/networktransaction_close.html",
            {
                **self.admin_site.each_context(request),
                "title": "Close network transactions by hand",
                "opts": self.model._meta,
                "rows": rows,
                "count": count(len(rows), "network transaction"),
                "totals": _totals(rows),
                "form": form,
                "ids": ids,
            },
        )

    def get_urls(self):
        return [
            path(
                "<int:object_id>/close/",
                self.admin_site.admin_view(self.close_view),
                name="ledger_networktransaction_close",
            ),
        ] + super().get_urls()

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        context["can_close_by_hand"] = bool(
            obj
            and NetworkTransaction.objects.polled().filter(pk=obj.pk).exists()
            and self.has_close_permission(request)
        )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)


# The wallets' admin lives in its own module (registered on import).
from . import admin_wallets  # noqa: E402, F401
