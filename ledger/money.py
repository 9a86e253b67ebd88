"""Exact conversions between base units (int) and decimal amounts.

Amounts live in the database as integer base units (satoshis for 8 decimals): SUM over
BIGINT is exact on SQLite and PostgreSQL alike, which a DecimalField is not on SQLite.
Floats are refused everywhere: they cannot represent most amounts.
"""
from decimal import Decimal, InvalidOperation

MAX_DECIMALS = 10  # 21e6 * 10**10 still fits a signed 64-bit integer


class AmountError(ValueError):
    """An amount that cannot be represented exactly in the currency's base units."""


def to_units(value, decimals: int) -> int:
    """Decimal/str/int amount in currency units -> exact integer base units.

    Refuses floats and anything with more precision than the currency has.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise AmountError(f"refusing {type(value).__name__} amount {value!r}: use Decimal or str")
    if isinstance(value, int):
        return value * 10**decimals
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise AmountError(f"{value!r} is not a number") from None
    if not isinstance(value, Decimal):
        raise AmountError(f"refusing amount of type {type(value).__name__}")
    if not value.is_finite():
        raise AmountError(f"{value} is not a finite amount")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{value} has more than {decimals} decimals")
    return int(scaled)


def from_units(units: int, decimals: int) -> Decimal:
    """Integer base units -> Decimal with exactly `decimals` places."""
    if not isinstance(units, int) or isinstance(units, bool):
        raise AmountError(f"base units must be int, got {type(units).__name__}")
    return Decimal(units).scaleb(-decimals).quantize(Decimal(1).scaleb(-decimals))


def format_units(units: int, decimals: int) -> str:
    """'1.50000000' for 150000000 at 8 decimals."""
    return f"{from_units(units, decimals):f}"
