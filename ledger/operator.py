"""The operator flows on network transactions: "Check now" and "Close by hand".

The permission and the admin history entry live here; the work is ledger.confirmations',
which the scheduled tracker runs too (as the system, without either)."""

from __future__ import annotations

from . import actors
from .models import NetworkTransaction

CHECK_PERM = "ledger.check_networktransaction"
CLOSE_PERM = "ledger.close_networktransaction_by_hand"


def check_now(rows, *, by):
    """These rows against their wallets' nodes, now: the confirmations Summary."""
    from .confirmations.entry_points import check_rows

    actors.require(by, CHECK_PERM)
    return check_rows(list(rows))


def close_transactions_by_hand(row_ids, *, by, reason: str) -> list[NetworkTransaction]:
    """Close polled rows with a reason; moves no money. Raises CloseRefused (nothing written)."""
    from .confirmations.closing import close_rows_by_hand as close

    actors.require(by, CLOSE_PERM)
    closed = close(row_ids, actors.person(by), reason)
    for row in closed:
        actors.log_action(by, row, f"Closed by hand: {row.close_reason}")
    return closed
