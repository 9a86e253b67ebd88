"""Moves between users' own accounts of one currency (locks and unlocks, a trade's settlement):
one to MAX_MOVES moves posted all or none in one database transaction.

Only the accounts a user's product moves money between (201, 202, 203, 205, 206, 230): 204
belongs to withdrawals, system accounts to the outside world. No source goes below zero at any
move of the batch, even with concurrent batches and withdrawals: the source accounts' rows are
locked in id order (a withdrawal locks its 201 row too), then their balances read."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from . import outbox, services
from .models import Account, Currency, Transaction
from .money import format_units

MOVABLE_CODES = (201, 202, 203, 205, 206, 230)
MAX_MOVES = 1000


@dataclass(frozen=True)
class Move:
    from_user: str
    from_code: int
    to_user: str
    to_code: int
    amount: int  # base units
    label: str = ""


class TransferRefused(services.LedgerError):
    """A batch refused as a whole, nothing written; `index` is the move at fault (None: the
    batch itself), `code` the reason as a code."""

    def __init__(self, code: str, message: str, index: int | None = None):
        super().__init__(message)
        self.code, self.message, self.index = code, message, index


def post_transfers(
    currency: Currency, moves: list[Move], names: dict[int, str] | None = None, *, created_by=None
) -> list[Transaction]:
    """Post the moves in order, all or none; returns the ledger rows. Raises TransferRefused.
    `names` gives the accounts' names in the caller's vocabulary for the events (the API speaks
    the balances query's field names, a layer above this one)."""
    _check_batch(currency, moves)
    with transaction.atomic():
        accounts = _accounts(currency, moves)
        sources = sorted({accounts[m.from_user, m.from_code].pk for m in moves})
        # Fixed order: two batches sharing accounts queue instead of deadlocking. NO KEY UPDATE,
        # not UPDATE: each commit's foreign-key checks take KEY SHARE on its destinations, which
        # a plain FOR UPDATE held by a batch going the other way would block (a deadlock).
        sources_query = Account.objects.select_for_update(no_key=True).filter(pk__in=sources)
        list(sources_query.order_by("pk"))
        _check_funds(currency, moves, accounts, sources)
        rows = [
            Transaction(
                currency_id=currency.pk,
                source=accounts[m.from_user, m.from_code],
                destination=accounts[m.to_user, m.to_code],
                amount=m.amount,
                kind=Transaction.Kind.INTERNAL,
                label=m.label,
                created_by=created_by,
            )
            for m in moves
        ]
        created = services.post_many(rows)
        outbox.emit_many(
            [
                _event(currency, move, row, names or {})
                for move, row in zip(moves, created, strict=True)
            ]
        )
        return created


def _check_batch(currency: Currency, moves: list[Move]) -> None:
    if not 1 <= len(moves) <= MAX_MOVES:
        raise TransferRefused("batch_size", f"send 1 to {MAX_MOVES} moves, not {len(moves)}")
    if not currency.enabled:
        raise TransferRefused("currency_disabled", f"{currency.code} is disabled")
    for index, m in enumerate(moves):
        for code in (m.from_code, m.to_code):
            if code not in MOVABLE_CODES:
                raise TransferRefused(
                    "account_not_movable", f"account {code} cannot be moved by transfers", index
                )
        if not isinstance(m.amount, int) or isinstance(m.amount, bool) or m.amount <= 0:
            raise TransferRefused("invalid_amount", "the amount must be greater than zero", index)
        if (m.from_user, m.from_code) == (m.to_user, m.to_code):
            raise TransferRefused("same_account", "from and to are the same account", index)


def _accounts(currency: Currency, moves: list[Move]) -> dict[tuple[str, int], Account]:
    """(user, code) -> Account for every account of the batch, the missing ones created (a
    destination user may be new; a source without an account has nothing to move)."""
    wanted = {(m.from_user, m.from_code) for m in moves} | {(m.to_user, m.to_code) for m in moves}
    users = {user for user, _ in wanted}

    def existing():
        found = Account.objects.filter(currency=currency, user_id__in=users, code__in=MOVABLE_CODES)
        return {(a.user_id, a.code): a for a in found}

    accounts = existing()
    missing = wanted - set(accounts)
    if missing:
        Account.objects.bulk_create(
            [Account(user_id=u, currency=currency, code=c) for u, c in sorted(missing)],
            ignore_conflicts=True,
        )
        accounts = existing()
    return accounts


def _check_funds(currency, moves, accounts, sources) -> None:
    """Every move in order against the balances read under the locks: the first that would take
    a source below zero refuses the batch."""
    balance = services.balances(sources)
    for index, m in enumerate(moves):
        source = accounts[m.from_user, m.from_code].pk
        if balance[source] < m.amount:
            have, want = format_units(balance[source], currency.decimals), currency.format(m.amount)
            raise TransferRefused(
                "insufficient_funds",
                f"account {m.from_code} of user {m.from_user} would go below zero: "
                f"{have} available, {want} to move",
                index,
            )
        balance[source] -= m.amount
        destination = accounts[m.to_user, m.to_code].pk
        if destination in balance:
            balance[destination] += m.amount


def _event(currency: Currency, move: Move, row: Transaction, names) -> outbox.Emitted:
    data = {
        "id": str(row.pk),
        "currency": currency.code,
        "from": {"user": move.from_user, "account": names.get(move.from_code, move.from_code)},
        "to": {"user": move.to_user, "account": names.get(move.to_code, move.to_code)},
        "amount": currency.format(move.amount),
        "label": move.label,
    }
    return outbox.Emitted("transfer.posted", "transfer", str(row.pk), data)
