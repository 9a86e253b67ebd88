"""Queueing a withdrawal: the checks, the currency's rules, and 201 -> 204 in one
transaction with its queued (or awaiting approval) outgoing transaction."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from ledger import actors
from ledger import services as ledger
from ledger.backends import BackendError
from ledger.models import Account, Transaction, Wallet
from ledger.money import AmountError, to_units

from . import events
from .errors import OutgoingError
from .models import OutgoingTransaction, WithdrawalRule

QUEUE_PERM = "broadcasts.queue_outgoingtransaction"


def _wallet_for(currency, wallet):
    if wallet is not None:
        if wallet.currency_id != currency.pk:
            raise OutgoingError(
                f"wallet {wallet.name} is not a {currency.code} wallet", code="wrong_wallet"
            )
        return wallet
    wallet = Wallet.objects.filter(currency=currency, enabled=True).order_by("id").first()
    if wallet is None:
        raise OutgoingError(f"no enabled {currency.code} wallet to send from", code="no_wallet")
    return wallet


def check_external(
    account: Account, address: str, amount: int, wallet: Wallet | None = None
) -> Wallet:
    """Every check of send_external that does not need the lock. Returns the paying wallet."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise OutgoingError(
            f"the amount must be integer base units, got {type(amount).__name__}",
            code="invalid_amount",
        )
    if amount <= 0:
        raise OutgoingError("the amount must be greater than zero", code="invalid_amount")
    if account.code != Account.Code.BALANCE or account.user_id is None:
        raise OutgoingError(
            "withdrawals are paid from a user's 201 balance account", code="wrong_account"
        )
    currency = account.currency
    if not currency.enabled:
        raise OutgoingError(
            f"{currency.code} is disabled: no withdrawals", code="currency_disabled"
        )
    wallet = _wallet_for(currency, wallet)
    if not wallet.enabled:
        raise OutgoingError(f"wallet {wallet.name} is disabled", code="wallet_disabled")
    address = (address or "").strip()
    if not address:
        raise OutgoingError("a destination address is required", code="address_required")
    try:
        valid = wallet.get_backend().validate_address(address)
    except BackendError as exc:
        raise OutgoingError(
            f"cannot check the address now: {exc}", code="node_unreachable"
        ) from exc
    if not valid:
        raise OutgoingError(
            f"{address!r} is not a valid {currency.code} address on {currency.network}",
            code="invalid_address",
        )
    return wallet


_State = OutgoingTransaction.State


def send_external(
    account: Account,
    address: str,
    amount: int,
    *,
    wallet: Wallet | None = None,
    created_by=None,
    label: str = "",
) -> OutgoingTransaction:
    """Queue a withdrawal: 201 -> 204 and a queued OutgoingTransaction, in one transaction."""
    wallet = check_external(account, address, amount, wallet)  # node call: before any lock
    address = address.strip()
    rule = WithdrawalRule.objects.filter(currency_id=account.currency_id).first()
    check_minimum(rule, account.currency, amount)
    hold = ledger.user_account(account.user_id, account.currency, Account.Code.WITHDRAW_LOCKED)
    with transaction.atomic():
        # Serialises withdrawals of one user so two cannot both spend the same balance (nor
        # both slip under the daily limit).
        Account.objects.select_for_update().get(pk=account.pk)
        _check_balance(account, amount)
        why = approval_needed(rule, account, amount)
        entry = ledger.post(
            account,
            hold,
            amount,
            Transaction.Kind.PENDING_OUTGOING,
            label=label or f"withdrawal to {address}",
            created_by=created_by,
        )
        out = OutgoingTransaction.objects.create(
            wallet=wallet,
            currency_id=account.currency_id,
            account=account,
            hold_account=hold,
            address=address,
            amount=amount,
            lock_entry=entry,
            label=label,
            created_by=created_by,
            approval_reason=why,
            state=_State.AWAITING_APPROVAL if why else _State.QUEUED,
        )
        events.emit(f"withdrawal.{out.state}", [out.pk])
        return out


def _check_balance(account: Account, amount: int):
    available = ledger.balance(account)
    if available < amount:
        raise OutgoingError(
            f"too little balance: {account.currency.amount(available)} available, "
            f"{account.currency.amount(amount)} requested",
            code="insufficient_funds",
        )


def check_minimum(rule: WithdrawalRule | None, currency, amount: int):
    if rule is not None and amount < rule.minimum_amount:
        raise OutgoingError(
            f"the minimum {currency.code} withdrawal is {currency.amount(rule.minimum_amount)}; "
            f"{currency.amount(amount)} requested",
            code="below_minimum",
        )


def approval_needed(rule: WithdrawalRule | None, account: Account, amount: int) -> str:
    """Why this withdrawal must wait for a second person ('' if it need not). The daily total
    is the user's withdrawals of the last 24 hours that were not given back, plus this one;
    the caller holds the user's 201 row lock, so two withdrawals cannot both slip under it."""
    if rule is None:
        return ""
    fmt, code = account.currency.format, account.currency.code
    if rule.approval_above is not None and amount > rule.approval_above:
        return f"amount {fmt(amount)} {code} is above {fmt(rule.approval_above)} {code}"
    if rule.daily_limit is not None:
        earlier = (
            OutgoingTransaction.objects.filter(
                account=account, created_at__gte=timezone.now() - timedelta(days=1)
            )
            .exclude(state__in=OutgoingTransaction.RETURNED_STATES)
            .aggregate(t=Sum("amount"))["t"]
            or 0
        )
        if earlier + amount > rule.daily_limit:
            return (
                f"the user's withdrawals of the last 24 hours would reach {fmt(earlier + amount)} "
                f"{code}, above the daily {fmt(rule.daily_limit)} {code}"
            )
    return ""


def queue_withdrawal(
    user_id: str,
    currency,
    address: str,
    amount_text: str,
    *,
    by,
    wallet: Wallet | None = None,
    label: str = "",
) -> OutgoingTransaction:
    """The operator's "queue an outgoing transaction": an existing user's 201 account only (a
    typo must not open a new user's books), the amount as typed in currency units, the
    address checked by the node once (in send_external), then queued. Raises OutgoingError
    (nothing written; `field` says which input) or PermissionDenied."""
    actors.require(by, QUEUE_PERM)
    if wallet is not None and currency is None:
        currency = wallet.currency
    try:
        amount = to_units(amount_text, currency.decimals)
    except AmountError as exc:
        raise OutgoingError(str(exc), field="amount", code="invalid_amount") from None
    account = (
        Account.objects.filter(
            user_id=(user_id or "").strip(), currency=currency, code=Account.Code.BALANCE
        )
        .select_related("currency")
        .first()
    )
    if account is None:
        raise OutgoingError(
            f"no {currency.code} account for this user", field="user_id", code="unknown_user"
        )
    out = send_external(
        account, address, amount, wallet=wallet, created_by=actors.person(by), label=label
    )
    actors.log_action(by, out, "Queued", added=True)
    return out
