"""A person's page: one user id's balances per account and currency, addresses, deposits,
withdrawals and ledger entries, each linking to its own page. Read only (a GET writes nothing).
In ops because it reads every app's rows (ledger, broadcasts, balances' table of names)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from balances.table import FIELD_ACCOUNTS, USER_ID_RE, account_name
from broadcasts.models import OutgoingTransaction
from ledger import actors
from ledger.models import Account, Address, Transaction, Wallet
from ledger.receiving import ADDRESS_PERM, AddressRefused, give_address

# The newest rows of each kind on the page; the "all" link opens the filtered list.
SHOWN = 50
VIEW_PERM = "ledger.view_account"


def url_of(user_id: str) -> str:
    return reverse("person", args=[user_id])


def balance_rows(accounts) -> tuple[list, list]:
    """(column names, [(currency, [amount text per column])]) from the user's accounts."""
    codes = list(FIELD_ACCOUNTS.values())
    per_currency: dict = {}
    for account in accounts:
        total = getattr(account, "running_total", None)
        per_currency.setdefault(account.currency, {})[account.code] = total.balance if total else 0
    rows = [
        (currency, [currency.amount(balances.get(code, 0)) for code in codes])
        for currency, balances in sorted(per_currency.items(), key=lambda kv: kv[0].code)
    ]
    return [account_name(code) for code in codes], rows


def person_view(request, user_id):
    if not request.user.has_perm(VIEW_PERM):
        raise PermissionDenied
    if not USER_ID_RE.match(user_id):
        raise Http404("No such user id")
    accounts = list(
        Account.objects.filter(user_id=user_id).select_related("currency", "running_total")
    )
    if not accounts:
        raise Http404("No user with this id")
    ids = [a.pk for a in accounts]
    columns, rows = balance_rows(accounts)
    entries = Transaction.objects.filter(Q(source_id__in=ids) | Q(destination_id__in=ids))
    context = {
        **admin.site.each_context(request),
        "title": f"Person {user_id}",
        "user_id": user_id,
        "columns": columns,
        "rows": rows,
        "addresses": Address.objects.filter(account_id__in=ids)
        .select_related("wallet")
        .order_by("-created_at")[:SHOWN],
        "deposits": entries.filter(kind=Transaction.Kind.DEPOSIT)
        .select_related("network_transaction", "address", "currency")
        .order_by("-created_at")[:SHOWN],
        "withdrawals": OutgoingTransaction.objects.filter(account_id__in=ids)
        .select_related("currency", "approved_by", "created_by")
        .order_by("-created_at")[:SHOWN],
        "entries": entries.select_related(
            "currency", "source__currency", "destination__currency", "network_transaction"
        ).order_by("-created_at", "-id")[:SHOWN],
        "shown": SHOWN,
        "wallets": Wallet.objects.active().filter(currency_id__in={a.currency_id for a in accounts})
        if request.user.has_perm(ADDRESS_PERM)
        else [],
    }
    return TemplateResponse(request, "ops/person.html", context)


@require_POST
def new_address_view(request, user_id):
    """A new receiving address of one of the active wallets for an existing person (the node
    is asked outside any database transaction: an unused address costs nothing)."""
    if not actors.allowed(request.user, ADDRESS_PERM):
        raise PermissionDenied  # before any lookup; the service checks it again
    if not Account.objects.filter(user_id=user_id).exists():
        raise Http404("No user with this id")
    wallet_id = request.POST.get("wallet", "")
    wallet = (
        Wallet.objects.active().filter(pk=int(wallet_id)).first() if wallet_id.isdigit() else None
    )
    if wallet is None:
        return HttpResponseBadRequest("unknown_wallet: choose one of the active wallets")
    try:
        address = give_address(wallet, user_id, by=request.user)
    except AddressRefused as exc:
        messages.error(request, f"{exc} [{exc.code}]")
    else:
        messages.success(request, f"New {wallet.currency.code} address for {user_id}: {address}")
    return redirect("person", user_id)
