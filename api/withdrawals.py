"""POST /api/v1/withdrawals (once per Idempotency-Key) and GET /api/v1/withdrawals/{id} or
?idempotency_key=: through exactly the service an Admin's queueing goes through (address
check, balance, withdrawal rules, limits, four-eyes approval), the token as the requester."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from ninja import Query, Router, Status

from broadcasts.errors import OutgoingError
from broadcasts.models import OutgoingTransaction
from broadcasts.withdrawals import queue_withdrawal
from ledger.models import Currency

from . import idempotency
from .actors import actor
from .auth import scoped
from .errors import ApiError
from .models import IdempotencyKey
from .schemas import ERRORS, ErrorOut, WithdrawalIn, WithdrawalOut

router = Router(tags=["withdrawals"])
# The service's refusal code -> the answer's status and the request field at fault.
REFUSALS = {
    "invalid_amount": (400, "amount"),
    "unknown_user": (422, "user"),
    "address_required": (400, "address"),
    "invalid_address": (422, "address"),
    "insufficient_funds": (422, "amount"),
    "below_minimum": (422, "amount"),
    "node_unreachable": (503, "address"),
    "currency_disabled": (422, "currency"),
    "no_wallet": (422, "currency"),
    "wallet_disabled": (422, "currency"),
}
State = OutgoingTransaction.State


@router.post(
    "/withdrawals",
    auth=scoped("withdrawals:write"),
    response={201: WithdrawalOut, 503: ErrorOut, **ERRORS},
    summary="Request a withdrawal (it may wait for a person's approval)",
)
def create_withdrawal(
    request,
    payload: WithdrawalIn,
    idempotency_key: str = idempotency.KEY_PARAM,
):
    currency = Currency.objects.filter(code=payload.currency).first()
    if currency is None:
        raise ApiError(400, "unknown_currency", f"no currency {payload.currency!r}", "currency")
    by = actor(request)
    return idempotency.once(request, lambda: (201, _queue(payload, currency, by)))


@router.get(
    "/withdrawals/{withdrawal_id}",
    auth=scoped("withdrawals:read"),
    response={200: WithdrawalOut, 404: ErrorOut, **ERRORS},
    summary="A withdrawal's state",
)
def get_withdrawal(request, withdrawal_id: int):
    return Status(200, data(get_object_or_404(_rows(), pk=withdrawal_id)))


@router.get(
    "/withdrawals",
    auth=scoped("withdrawals:read"),
    response={200: WithdrawalOut, 404: ErrorOut, **ERRORS},
    summary="The withdrawal this token requested with an Idempotency-Key",
)
def get_withdrawal_by_key(request, idempotency_key: str = Query(..., min_length=1, max_length=255)):
    found = IdempotencyKey.objects.filter(token=request.api_token, key=idempotency_key).first()
    if found is None or not found.object_id.isdigit():
        raise ApiError(404, "not_found", "no withdrawal requested with this key", "idempotency_key")
    return Status(200, data(get_object_or_404(_rows(), pk=int(found.object_id))))


def _rows():
    return OutgoingTransaction.objects.select_related(
        "currency", "account", "broadcast__network_transaction"
    )


def _queue(payload: WithdrawalIn, currency: Currency, by) -> dict:
    try:
        out = queue_withdrawal(
            payload.user, currency, payload.address, payload.amount, by=by, label=payload.label
        )
    except OutgoingError as exc:
        status, field = REFUSALS.get(exc.code, (422, None))
        raise ApiError(status, exc.code, str(exc), field) from None
    return data(_rows().get(pk=out.pk))


def data(out: OutgoingTransaction) -> dict:
    """A withdrawal in the API's vocabulary."""
    broadcast = out.broadcast
    sent = broadcast is not None and out.state in (State.BROADCASTING, State.BROADCASTED)
    network = broadcast.network_transaction if broadcast is not None else None
    return {
        "id": str(out.pk),
        "state": out.state,
        "user": out.account.user_id,
        "currency": out.currency.code,
        "address": out.address,
        "amount": out.currency.format(out.amount),
        "label": out.label,
        "created_at": out.created_at.isoformat(),
        "txid": (broadcast.txid or None) if sent else None,
        "confirmations": network.confirmations if network is not None else None,
        "fee": _fee_share(out, broadcast),
        "reason": _reason(out),
    }


def _fee_share(out: OutgoingTransaction, broadcast) -> str | None:
    share = broadcast.fee_share(out.amount) if broadcast is not None else None  # booked fee only
    return None if share is None else out.currency.format(share)


def _reason(out: OutgoingTransaction) -> str | None:
    if out.state == State.AWAITING_APPROVAL:
        return out.approval_reason or None
    if out.state in OutgoingTransaction.RETURNED_STATES:
        return out.close_reason or None
    if out.state == State.NEEDS_ATTENTION:
        return out.last_error or None
    return None
