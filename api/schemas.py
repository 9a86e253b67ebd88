"""The API's request and reply bodies (the OpenAPI document is made from these). Amounts are
decimal strings in the currency's units; accounts are the balances query's field names.
Request bodies are plain pydantic models: ninja's Schema wraps every item to read Django
objects, which a batch of 1,000 moves paid for at every field."""

from __future__ import annotations

from ninja import Field, Schema
from pydantic import BaseModel

USER = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")
AMOUNT = Field(..., min_length=1, max_length=64, examples=["0.10000000"])
LABEL = Field("", max_length=255)
CREATED_AT = Field(
    ..., description="ISO 8601 with its UTC offset", examples=["2026-01-01T12:00:00+00:00"]
)


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


class Party(BaseModel):
    user: str = USER
    account: str = Field(..., max_length=64, examples=["balance", "lockedBalance"])


class MoveIn(BaseModel):
    from_: Party = Field(..., alias="from")
    to: Party
    amount: str = AMOUNT
    label: str = LABEL


class TransfersIn(BaseModel):
    currency: str = Field(..., min_length=1, max_length=16, examples=["BTC"])
    transfers: list[MoveIn] = Field(..., min_length=1, max_length=1000)


class MoveOut(Schema):
    id: str
    from_: Party = Field(..., alias="from")
    to: Party
    amount: str
    label: str
    created_at: str = CREATED_AT


class TransfersOut(Schema):
    currency: str
    transfers: list[MoveOut]


ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class AddressIn(BaseModel):
    user: str = USER
    currency: str = Field(..., min_length=1, max_length=16, examples=["BTC"])
    label: str = Field("", max_length=128)


class AddressOut(Schema):
    address: str
    currency: str
    user: str
    wallet: str
    label: str
    created_at: str = CREATED_AT


class WithdrawalIn(BaseModel):
    user: str = USER
    currency: str = Field(..., min_length=1, max_length=16, examples=["BTC"])
    address: str = Field(..., min_length=1, max_length=128)
    amount: str = AMOUNT
    label: str = LABEL


class WithdrawalOut(Schema):
    id: str
    state: str = Field(
        ...,
        examples=["awaiting_approval", "queued", "broadcasting", "broadcasted", "rejected"],
        description="awaiting_approval, queued, broadcasting, broadcasted, rejected, cancelled "
        "or needs_attention",
    )
    user: str
    currency: str
    address: str
    amount: str
    label: str
    created_at: str = CREATED_AT
    txid: str | None = None
    confirmations: int | None = None
    fee: str | None = Field(None, description="This withdrawal's share of the network fee")
    reason: str | None = Field(
        None, description="Why it waits for approval, was returned or needs attention"
    )
