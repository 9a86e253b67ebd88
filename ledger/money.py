"""Exact conversions between base units (int) and decimal amounts.

Amounts live in the database as integer base units (satoshis for 8 decimals): SUM over
BIGINT is exact on SQLite and PostgreSQL alike, which a DecimalField is not on SQLite.
Floats are refused everywhere: they cannot represent most amounts.
"""

import re
from decimal import Decimal, InvalidOperation

from cryptoadmin.errors import CryptoadminError

MAX_DECIMALS = 10  # 21e6 * 10**10 still fits a signed 64-bit integer
MAX_UNITS = 2**63 - 1  # amounts are stored in BIGINT columns
MAX_TEXT = 100  # no amount needs more characters; longer text is refused before parsing

# ASCII digits only, one optional exponent: Decimal() also accepts '1_000', other scripts'
# digits and 'NaN', none of which an amount field should mean.
_AMOUNT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,9})?")


class AmountError(CryptoadminError, ValueError):
    """An amount that cannot be represented exactly in the currency's base units."""


def to_units(value, decimals: int) -> int:
    """Decimal/str/int amount in currency units -> exact integer base units.

    The one parsing function for amounts, typed or read from a node. Refuses floats, any
    precision below one base unit (never rounds), and anything outside BIGINT, with
    AmountError only: the arithmetic is done on the digits, never in a Decimal context, so
    no context precision can round and no exponent can overflow."""
    if isinstance(value, bool) or isinstance(value, float):
        raise AmountError(f"refusing {type(value).__name__} amount {value!r}: use Decimal or str")
    if isinstance(value, int):
        units = value * 10**decimals if abs(value) <= MAX_UNITS else MAX_UNITS + 1
        return _in_range(units, value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TEXT or not _AMOUNT_TEXT.fullmatch(text):
            raise AmountError(f"{value[:40]!r} is not a number") from None
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise AmountError(f"{value[:40]!r} is not a number") from None
    if not isinstance(value, Decimal):
        raise AmountError(f"refusing amount of type {type(value).__name__}")
    if not value.is_finite():
        raise AmountError(f"{value} is not a finite amount")
    sign, digits, exponent = value.as_tuple()
    digits = list(digits)
    while digits and digits[-1] == 0:  # 1.50000 has no sub-unit precision
        digits.pop()
        exponent += 1
    while digits and digits[0] == 0:
        digits.pop(0)
    if not digits:
        return 0
    shift = exponent + decimals  # units = int(digits) * 10**shift
    if shift < 0:
        raise AmountError(f"{_short(value)} has more than {decimals} decimals")
    if len(digits) + shift > len(str(MAX_UNITS)):
        raise AmountError(f"{_short(value)} is too large")
    units = int("".join(map(str, digits))) * 10**shift
    return _in_range(-units if sign else units, value)


def _in_range(units: int, value) -> int:
    if abs(units) > MAX_UNITS:
        raise AmountError(f"{_short(value)} is too large")
    return units


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def from_units(units: int, decimals: int) -> Decimal:
    """Integer base units -> Decimal with exactly `decimals` places."""
    if not isinstance(units, int) or isinstance(units, bool):
        raise AmountError(f"base units must be int, got {type(units).__name__}")
    return Decimal(units).scaleb(-decimals).quantize(Decimal(1).scaleb(-decimals))


def format_units(units: int, decimals: int) -> str:
    """'1.50000000' for 150000000 at 8 decimals."""
    return f"{from_units(units, decimals):f}"


def format_amount(units, currency) -> str:
    """The one way an amount is shown to a person: '1.50000000 BTC' (the currency's decimals,
    then its code). Admin pages, lists, panels, messages, history entries, CSV exports and
    command output all go through this (templates through the `amount` filter); "—" when there
    is no amount yet (a fee not looked up)."""
    if units is None:
        return "—"
    return f"{format_units(int(units), currency.decimals)} {currency.code}"
