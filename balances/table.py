"""The balances table, defined once: its columns (balance field -> account code) and its rows
(one per currency, for one user's snapshot). The GraphQL reply (balances/schema.py) and the
admin's "User balances" page (balances/admin.py) both render it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledger.money import format_amount, format_units

from .cache import get_cache

# A user id the balances query and the admin's lookup accept (Account.user_id is at most 128
# characters). Here, not in schema.py: the admin reads it at start-up, and importing the GraphQL
# schema (strawberry) cost every Django process, the suite's many children too, ~0.3 s of CPU.
USER_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")

# Balance field -> account code, in column order. The GraphQL field names of the balances query.
FIELD_ACCOUNTS = {
    "balance": 201,
    "advancedTradingBalance": 202,
    "advancedTradingLockedBalance": 230,
    "lockedBalance": 203,
    "withdrawLockedBalance": 204,
    "stakingLockedBalance": 205,
    "activeStakingBalance": 206,
}


# A system account's name; a user account's is its balance field's words (account_name).
SYSTEM_NAMES = {900: "network", 910: "import", 920: "network fees"}


def account_name(code: int) -> str:
    """What a person reads for an account code: the balance field in words ("withdraw locked"
    for withdrawLockedBalance; "balance" for balance), a system account's name otherwise."""
    for field, field_code in FIELD_ACCOUNTS.items():
        if field_code == code:
            words = re.sub(r"([A-Z])", r" \1", field).lower().split()
            return " ".join(words[:-1] if len(words) > 1 else words)
    return SYSTEM_NAMES[code]


@dataclass(frozen=True)
class CurrencyRow:
    code: str
    enabled: bool
    decimals: int
    balances: dict  # account code -> int base units (absent: no account, shown as 0)

    def amount(self, field: str) -> str:
        """The column's amount as a decimal string in the currency's units ("1.50000000")."""
        return format_units(self.balances.get(FIELD_ACCOUNTS[field], 0), self.decimals)

    def amounts(self) -> list[str]:
        return [self.amount(field) for field in FIELD_ACCOUNTS]

    def shown_amounts(self) -> list[str]:
        """The admin page's cells: money.format_amount ("1.50000000 BTC"; a row has the
        currency's code and decimals)."""
        return [format_amount(self.balances.get(code, 0), self) for code in FIELD_ACCOUNTS.values()]


def currency_rows(snapshot: dict, currencies=None) -> list[CurrencyRow]:
    """Every currency, by code, with the user's balances from `snapshot` (currency code ->
    account code -> units, as the balance cache returns it); the currencies (code, enabled,
    decimals) as given, else from their cache beside the balances."""
    return [
        CurrencyRow(code, enabled, decimals, snapshot.get(code, {}))
        for code, enabled, decimals in (currencies or get_cache().reference.currencies())
    ]
