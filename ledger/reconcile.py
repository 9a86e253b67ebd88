"""Node against books: what the wallet holds on chain versus what the books say it holds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from cryptoadmin import faults

from . import actors, services
from .models import Account, NetworkTransaction, Wallet


@dataclass
class Reconciliation:
    wallet_id: int
    node_balance: int  # minconf 0: what the node's wallet holds, pending included
    books_balance: int  # services.wallet_books_balance: users + fees, pending outgoing included
    uncredited: (
        int  # received on our addresses, not (yet) credited: neither imported nor counted twice
    )
    users_balance: int = 0
    pending_outgoing: int = 0
    fees: int = 0
    missing_deposits: list[dict] = field(default_factory=list)  # node has, books lack
    checked_at: str = ""

    @property
    def unaccounted(self) -> int:
        """Coins on the node whose owner the books do not know (negative: books hold more)."""
        return self.node_balance - self.books_balance - self.uncredited

    def as_dict(self):
        return {**asdict(self), "unaccounted": self.unaccounted}

    @classmethod
    def from_dict(cls, data: dict) -> Reconciliation:
        """The result recorded on the wallet (as_dict), to show without asking the node again."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class QuickFigures:
    """Node against books without reading what every address received: the node's balance,
    the books' running totals and the deposits recorded but not credited yet. Its cost does
    not grow with the books' history nor with the node's number of addresses, so a page can
    show it on every load; a deposit the node has and the books never recorded (no row yet)
    is not among the awaiting ones and shows in the difference until a rescan or a full
    reconciliation (`reconcile`) finds it."""

    wallet_id: int
    node_balance: int  # minconf 0, as the full reconciliation
    books_balance: int  # services.wallet_books_balance
    awaiting_credit: int  # known amounts of NetworkTransaction.objects.awaiting_credit()
    unknown_amount: int = 0  # awaiting rows recorded before their amount was kept

    @property
    def difference(self) -> int:
        """Node - books - awaiting credit (not exact while unknown_amount > 0)."""
        return self.node_balance - self.books_balance - self.awaiting_credit


def quick(wallet: Wallet, node_balance: int | None = None, awaiting=None) -> QuickFigures:
    """The quick figures of one wallet: one node call (its balance, unless the caller asked
    already, e.g. in a thread with no database) and a few queries on running totals and open
    rows. `awaiting`: the wallet's (total, unknown) when the caller read several wallets'
    at once (NetworkTransaction.objects.awaiting_credit_per_wallet)."""
    if node_balance is None:
        node_balance = wallet.get_backend().get_balance(minconf=0)
    if awaiting is None:
        per_wallet = NetworkTransaction.objects.filter(wallet=wallet).awaiting_credit_per_wallet()
        awaiting = per_wallet.get(wallet.pk, (0, 0))
    total, unknown = awaiting
    return QuickFigures(
        wallet_id=wallet.pk,
        node_balance=node_balance,
        books_balance=services.wallet_books_balance(wallet),
        awaiting_credit=total,
        unknown_amount=unknown,
    )


RECONCILE_PERM = "ledger.reconcile_wallet"
# Addresses of the node's reply looked up per query (one query per batch).
RECONCILE_BATCH = 5000

# One statement per batch for both engines; only how the reported values are passed differs.
# Our receiving addresses among the reported ones with what the books credited to each
# (kind 'a'), then the reported txids on those addresses that the books have as a deposit of
# this wallet (kind 't'). The addresses are matched with `= ANY(array)` on PostgreSQL, which
# probes the address index for a large wallet and hashes the list against a small one (a join
# with the list hashed all 100,000 addresses of a large wallet for every batch; a subquery
# per address scanned a small table once per reported row).
_LOOKUP = """
WITH ours AS (
  SELECT a.id, a.address FROM ledger_address a
  WHERE a.wallet_id = %s AND a.kind = 'receiving' AND {address_in}
)
SELECT 'a', o.address, (
  SELECT CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) FROM ledger_transaction t
  WHERE t.address_id = o.id AND t.kind = 'deposit'
), NULL FROM ours o
UNION ALL
SELECT 't', p.address, NULL, p.txid FROM {pairs}
WHERE p.address IN (SELECT address FROM ours) AND EXISTS (
  SELECT 1 FROM ledger_networktransaction n
  WHERE n.wallet_id = %s AND n.txid = p.txid AND n.type = 'deposit'
)
"""
# Per engine: the test of a.address against the reported addresses, the (address, txid)
# pairs as a table p(address, txid), and how a list of strings is passed as one parameter.
_ARRAYS = {
    "postgresql": (
        "a.address = ANY(%s::text[])",
        "unnest(%s::text[], %s::text[]) AS p(address, txid)",
        list,
    ),
    "sqlite": (
        "a.address IN (SELECT value FROM json_each(%s))",
        "(SELECT a.value AS address, t.value AS txid FROM json_each(%s) a"
        " JOIN json_each(%s) t ON t.key = a.key) AS p",
        json.dumps,
    ),
}


def lookup(wallet: Wallet, rows: list) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """The books' side of some of the node's received-by-address rows, in one query: which
    reported addresses are our receiving addresses with the deposits credited to each, and
    which (address, txid) pairs on them the books know as this wallet's deposits."""
    using = wallet._state.db or "default"
    connection = connections[using]
    address_in, pairs, as_param = _ARRAYS[connection.vendor]
    pair_addresses = [row.address for row in rows for _ in row.txids]
    txids = [t for row in rows for t in row.txids]
    sql = _LOOKUP.format(address_in=address_in, pairs=pairs)
    params = [
        wallet.pk,
        as_param([row.address for row in rows]),
        as_param(pair_addresses),
        as_param(txids),
        wallet.pk,
    ]
    credited, known = {}, set()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, address, books, txid in cursor.fetchall():
            if kind == "a":
                credited[address] = books
            else:
                known.add((address, txid))
    return credited, known


def reconcile(wallet: Wallet) -> Reconciliation:
    """Ask the node and compare with the books; writes nothing (see record_reconciliation)."""
    node_balance, received = node_figures(wallet.get_backend())
    return compare(wallet, node_balance, received)


def node_figures(backend) -> tuple[int, list]:
    """What the full reconciliation asks the node: its balance (pending included) and what
    each address received (the long read: every address the node's wallet has)."""
    return backend.get_balance(minconf=0), backend.list_received_by_address(minconf=0)


def compare(wallet: Wallet, node_balance: int, received: list) -> Reconciliation:
    """The node's figures against the books, address by address: the full reconciliation's
    one computation of the difference (the reconcile task, the import; the admin home page
    shows the quick figures instead, see `quick`)."""
    uncredited, missing = 0, []
    # Only what the node reports is looked up, in batches: the cost follows the node's reply,
    # never the number of deposits or addresses the books have collected over the years.
    for start in range(0, len(received), RECONCILE_BATCH):
        batch = received[start : start + RECONCILE_BATCH]
        credited, known = lookup(wallet, batch)
        for row in batch:
            if row.address not in credited:
                # Change and addresses the books never gave out: part of the unaccounted balance.
                continue
            credited_here = credited[row.address]
            gap = row.amount - credited_here
            if gap > 0:
                uncredited += gap
            unknown = [t for t in row.txids if (row.address, t) not in known]
            if unknown:
                missing.append(
                    {
                        "address": row.address,
                        "txids": unknown,
                        "received": row.amount,
                        "credited": credited_here,
                    }
                )
    books = services.wallet_books_balance(wallet)
    system = services.system_accounts(wallet)
    fees = services.balance(system[Account.Code.FEES])
    pending = services.total_of_users(wallet.currency_id, Account.Code.WITHDRAW_LOCKED)
    result = Reconciliation(
        wallet_id=wallet.pk,
        node_balance=node_balance,
        books_balance=books,
        uncredited=uncredited,
        users_balance=books - fees,
        pending_outgoing=pending,
        fees=fees,
        missing_deposits=missing,
        checked_at=timezone.now().isoformat(),
    )
    return result


def record_reconciliation(wallet: Wallet, *, by) -> Reconciliation:
    """The full reconciliation recorded on the wallet (what the reconciliation page shows
    without asking the node again): run by the queued task of "Reconcile now", or directly.
    The UPDATE recording the result also ends a pending request: the result answers it."""
    actors.require(by, RECONCILE_PERM)
    result = reconcile(wallet)
    faults.point("reconcile.before_record")  # the node was asked; nothing recorded yet
    Wallet.objects.filter(pk=wallet.pk).update(
        last_reconciled_at=timezone.now(),
        last_reconciliation=result.as_dict(),
        reconcile_requested_at=None,
        reconcile_requested_by=None,
        last_reconcile_error="",
        last_reconcile_error_at=None,
    )
    c = wallet.currency
    actors.log_action(by, wallet, f"Reconciled: difference {c.amount(result.unaccounted)}")
    return result


def request_stale_after() -> timedelta:
    """A pending request older than the task queue's timeout has no live worker on it (the
    cluster kills a task at its timeout): a new request may queue the scan again."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"])


def request_reconciliation(wallet: Wallet, *, by) -> bool:
    """The operator's "Reconcile now": queue the full reconciliation for a worker (it reads
    every address the node has: seconds at a large node, too long for a request). One at a
    time per wallet: the request is marked on the wallet by a conditional UPDATE, in the same
    database transaction as the queued task (the ORM broker's row), so a double click queues
    one scan and a crash leaves neither. False: one is pending already, nothing queued."""
    from django_q.tasks import async_task

    actors.require(by, RECONCILE_PERM)
    now = timezone.now()
    who = actors.person(by)
    with transaction.atomic():
        claimed = (
            Wallet.objects.filter(pk=wallet.pk)
            .filter(
                Q(reconcile_requested_at__isnull=True)
                | Q(reconcile_requested_at__lt=now - request_stale_after())
            )
            .update(reconcile_requested_at=now, reconcile_requested_by=who)
        )
        if not claimed:
            return False
        async_task(
            "ledger.tasks.reconcile_wallet_task",
            wallet.pk,
            who.pk if who else None,
            task_name=f"reconcile {wallet.name}",
            group="reconcile",
        )
        actors.log_action(by, wallet, "Reconciliation queued")
    return True


def rerun_reconciliation(wallet_id, *args, by, **kwargs) -> bool:
    """A re-run of a queued reconciliation from the task records: a new "Reconcile now" by
    the person re-running it (their permission, their name, the one-at-a-time claim); the
    stored requester is never reused."""
    wallet = Wallet.objects.select_related("currency").get(pk=wallet_id)
    return request_reconciliation(wallet, by=by)


def reconcile_wallet_task(wallet_id: int, requested_by_id: int | None = None) -> dict:
    """django-q2 entry point of "Reconcile now": the full reconciliation as the person who
    asked (their permission checked again, the history entry theirs). A failure is recorded
    on the wallet and ends the request, so the page says so and it can be asked again."""
    from django.contrib.auth import get_user_model

    wallet = Wallet.objects.select_related("currency").get(pk=wallet_id)
    by = actors.SYSTEM
    if requested_by_id is not None:
        by = get_user_model().objects.filter(pk=requested_by_id).first() or actors.SYSTEM
    try:
        return record_reconciliation(wallet, by=by).as_dict()
    except Exception as exc:
        Wallet.objects.filter(pk=wallet_id).update(
            reconcile_requested_at=None,
            reconcile_requested_by=None,
            last_reconcile_error=f"{type(exc).__name__}: {exc}"[:500],
            last_reconcile_error_at=timezone.now(),
        )
        raise
