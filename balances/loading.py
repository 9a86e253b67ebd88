"""A user's balances read from the books: every user account of every currency in one query."""

from __future__ import annotations

from django.db import connections

from ledger.models import Account

ACCOUNT_CODES = Account.USER_CODES
_CODES_SQL = ", ".join(str(c) for c in ACCOUNT_CODES)

# One statement: the user's accounts, then credits and debits summed per account through the
# (destination, amount) and (source, amount) indexes, so a load is one round trip.
LOAD_SQL = f"""
WITH acc AS (
    SELECT a.id, a.code, c.code AS currency
    FROM ledger_account a JOIN ledger_currency c ON c.id = a.currency_id
    WHERE a.user_id = %s AND a.code IN ({_CODES_SQL})
), moves AS (
    SELECT t.destination_id AS account_id, SUM(t.amount) AS s
    FROM ledger_transaction t WHERE t.destination_id IN (SELECT id FROM acc)
    GROUP BY t.destination_id
    UNION ALL
    SELECT t.source_id, -SUM(t.amount)
    FROM ledger_transaction t WHERE t.source_id IN (SELECT id FROM acc) GROUP BY t.source_id
)
SELECT acc.currency, acc.code, CAST(COALESCE(SUM(moves.s), 0) AS BIGINT)
FROM acc LEFT JOIN moves ON moves.account_id = acc.id
GROUP BY acc.currency, acc.code
"""


def load_user_balances(user_id: str, using: str = "default") -> dict[str, dict[int, int]] | None:
    """All balances of one user in one query, or None if the user has no account."""
    with connections[using].cursor() as cursor:
        cursor.execute(LOAD_SQL, [user_id])
        rows = cursor.fetchall()
    if not rows:
        return None
    out: dict[str, dict[int, int]] = {}
    for currency, code, units in rows:
        out.setdefault(currency, dict.fromkeys(ACCOUNT_CODES, 0))[code] = int(units)
    return out
