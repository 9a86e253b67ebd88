"""POST /api/v1/transfers: one to 1,000 moves between users' accounts of one currency, all or
none (ledger.transfers does the money), once per Idempotency-Key."""

from __future__ import annotations

from django.utils import timezone
from ninja import Router

from balances.table import FIELD_ACCOUNTS
from ledger.models import Currency
from ledger.money import AmountError, to_units
from ledger.transfers import MOVABLE_CODES, Move, TransferRefused, post_transfers

from . import idempotency
from .actors import actor
from .auth import scoped
from .errors import ApiError
from .schemas import ERRORS, TransfersIn, TransfersOut

router = Router(tags=["transfers"])
NAMES = {code: name for name, code in FIELD_ACCOUNTS.items()}


@router.post(
    "/transfers",
    auth=scoped("transfers:write"),
    response={201: TransfersOut, **ERRORS},
    summary="Move money between users' accounts, all or none",
)
def create_transfers(request, payload: TransfersIn, idempotency_key: str = idempotency.KEY_PARAM):
    currency = Currency.objects.filter(code=payload.currency).first()
    if currency is None:
        raise ApiError(400, "unknown_currency", f"no currency {payload.currency!r}", "currency")
    moves = [_move(index, item, currency) for index, item in enumerate(payload.transfers)]
    user = actor(request).acting_user
    return idempotency.once(request, lambda: (201, _post(currency, moves, user)))


def _code(index: int, side: str, name: str) -> int:
    code = FIELD_ACCOUNTS.get(name)
    field = f"transfers.{index}.{side}.account"
    if code is None:
        raise ApiError(400, "unknown_account", f"no account named {name!r}", field)
    if code not in MOVABLE_CODES:
        raise ApiError(422, "account_not_movable", f"{name} cannot be moved by transfers", field)
    return code


def _move(index: int, item, currency: Currency) -> Move:
    try:
        amount = to_units(item.amount, currency.decimals)
    except AmountError as exc:
        raise ApiError(400, "invalid_amount", str(exc), f"transfers.{index}.amount") from None
    return Move(
        item.from_.user,
        _code(index, "from", item.from_.account),
        item.to.user,
        _code(index, "to", item.to.account),
        amount,
        item.label,
    )


def _post(currency: Currency, moves: list[Move], user) -> dict:
    try:
        rows = post_transfers(currency, moves, names=NAMES, created_by=user)
    except TransferRefused as refused:
        field = "transfers" if refused.index is None else f"transfers.{refused.index}"
        raise ApiError(422, refused.code, refused.message, field) from None
    now = timezone.now()
    return {
        "currency": currency.code,
        "transfers": [
            {
                "id": str(row.pk),
                "from": {"user": move.from_user, "account": NAMES[move.from_code]},
                "to": {"user": move.to_user, "account": NAMES[move.to_code]},
                "amount": currency.format(move.amount),
                "label": move.label,
                "created_at": (row.created_at or now).isoformat(),
            }
            for move, row in zip(moves, rows, strict=True)
        ],
    }
