"""POST /api/v1/addresses: a fresh receiving address from the currency's wallet (the node's
getnewaddress or block.io's), recorded before it is returned; 503 when the node cannot give one."""

from __future__ import annotations

from ninja import Router, Status

from ledger import services
from ledger.backends.base import BackendError, NodeUnreachable
from ledger.models import Currency, Wallet

from .actors import actor
from .auth import scoped
from .errors import ApiError
from .schemas import ERRORS, AddressIn, AddressOut, ErrorOut

router = Router(tags=["addresses"])


@router.post(
    "/addresses",
    auth=scoped("addresses:write"),
    response={201: AddressOut, 503: ErrorOut, **ERRORS},
    summary="A fresh deposit address for a user",
)
def create_address(request, payload: AddressIn):
    currency = Currency.objects.filter(code=payload.currency).first()
    if currency is None:
        raise ApiError(400, "unknown_currency", f"no currency {payload.currency!r}", "currency")
    wallet = Wallet.objects.active().filter(currency=currency).order_by("id").first()
    if wallet is None:
        raise ApiError(422, "no_wallet", f"no enabled {currency.code} wallet", "currency")
    try:
        row = services.new_receiving_address(wallet, payload.user, payload.label, by=actor(request))
    except NodeUnreachable as exc:
        raise ApiError(503, "node_unreachable", f"the {currency.code} node: {exc}") from None
    except BackendError as exc:
        raise ApiError(503, "wallet_error", f"the {currency.code} wallet: {exc}") from None
    return Status(201, services.address_data(row, payload.user))
