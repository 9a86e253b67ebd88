"""Deposit events from what the ledger's rows say now: deposit.seen the first time a deposit
is reported, deposit.confirmations on every change of its confirmations until it is closed
(the reference's txupdate), deposit.conflicted when it turns conflicted or vanished; and
withdrawal.confirmed when our own send's row closes at the threshold.

The poller does not rewrite every open row per block (a mined row's confirmations follow
from its wallet's tip), so the ledger tells this module where to look (`deposits_changed`,
sent inside its own transaction: the poll cycle's cursor update, a credit, recorded or re-asked
rows) and this module compares each deposit with what it last reported (DepositReport, locked
first, so two reporters never emit one change twice) and emits what changed, in that
transaction. A crash before the commit loses the change and its events together; the next
cycle reports from what committed."""

from __future__ import annotations

from django.db import connections, transaction
from django.db.models import Q
from django.dispatch import receiver

from ledger import outbox
from ledger.models import POLLED_STATES, NetworkTransaction, Wallet
from ledger.money import format_units
from ledger.outbox import Emitted
from ledger.signals import deposits_changed

from .models import DepositReport

NT = NetworkTransaction
TROUBLED = (NT.State.CONFLICTED, NT.State.VANISHED)


@receiver(deposits_changed)
def on_deposits_changed(
    sender, wallet_id=None, ids=None, confirmations=None, using="default", **kw
):
    with transaction.atomic(using=using, savepoint=False):
        report(wallet_id=wallet_id, ids=ids, known=confirmations or {}, using=using)


def deposit_data(row: NT, confirmations: int) -> dict:
    """A deposit in the API's vocabulary (the reference's txupdate fields)."""
    currency = row.currency
    return {
        "network_transaction": row.pk,
        "type": "deposit",
        "txid": row.txid,
        "currency": currency.code,
        "wallet": row.wallet.name,
        "amount": None if row.amount is None else format_units(row.amount, currency.decimals),
        "confirmations": confirmations,
        "credited": row.credited_at is not None,
        "state": row.state,
    }


def current_confirmations(row: NT) -> int:
    """A mined open row's confirmations follow from its wallet's tip (the poller does not
    rewrite it per block); a row the node was asked about since holds a fresher count."""
    tip = row.wallet.last_block_height
    if row.state == NT.State.OPEN and row.block_height is not None and tip is not None:
        return max(row.confirmations, tip - row.block_height + 1)
    return row.confirmations


def _rows(wallet_id, ids, using):
    """The rows to compare, each with its report (None: never reported). A wallet's pass: its
    polled deposits, and the deposits and sends whose report is not final yet."""
    rows = NT.objects.using(using).select_related("currency", "wallet", "event_report")
    if ids is not None:
        return list(rows.filter(pk__in=list(ids)).order_by("pk"))
    live = Q(type=NT.Type.DEPOSIT, state__in=POLLED_STATES) | Q(event_report__final=False)
    return list(rows.filter(live, wallet_id=wallet_id).order_by("pk"))


def _lock_wallets(ids, using) -> None:
    """One reporter per wallet at a time (the poll cycle's cursor update holds this lock too):
    two never compare with the same report and emit one change twice."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return  # SQLite runs one writer at a time
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Wallet._meta.db_table} WHERE id IN (SELECT wallet_id FROM "
            f"{NT._meta.db_table} WHERE id = ANY(%s)) ORDER BY id FOR UPDATE",
            [list(ids)],
        )


def report(*, wallet_id=None, ids=None, known=None, using="default") -> int:
    if ids is not None:
        if not ids:
            return 0
        _lock_wallets(ids, using)
    emitted, changed, added, confirmed = [], [], [], []
    rows = _rows(wallet_id, ids, using)
    credits = _credit_entries(rows)
    for row in rows:
        seen = (known or {}).get(row.pk, current_confirmations(row))
        last = getattr(row, "event_report", None)
        new = last is None
        if new:
            last = DepositReport(network_transaction=row)
            added.append(last)
        if row.type == NT.Type.BROADCAST:
            # Our own send reaching the threshold confirms the withdrawals it paid; its state
            # alone is followed (no write per block).
            if row.state == NT.State.CLOSED and last.state != row.state:
                confirmed.append(row.pk)
            seen = -1
        else:
            emitted += _deposit_events(row, last, seen, new, credits)
        if _remember(last, seen, row.state, row.credited_at is not None) and not new:
            changed.append(last)
    reports = DepositReport.objects.using(using)
    reports.bulk_create(added, batch_size=500)
    reports.bulk_update(changed, ["confirmations", "state", "credited", "final"], batch_size=500)
    outbox.emit_many(emitted, using=using)
    return len(emitted) + _confirm_withdrawals(confirmed)


def _deposit_events(row: NT, last: DepositReport, seen: int, new: bool, credits) -> list[Emitted]:
    """What changed since `last`, in order: first sight or confirmations, credit, trouble."""
    data = deposit_data(row, seen)
    out = []
    if new:
        out.append(Emitted("deposit.seen", "deposit", str(row.pk), data))
    elif seen != last.confirmations:
        out.append(Emitted("deposit.confirmations", "deposit", str(row.pk), data))
    if row.credited_at is not None and not last.credited:
        out.append(
            Emitted("deposit.credited", "deposit", str(row.pk), _credits(row, data, credits))
        )
    if row.state in TROUBLED and last.state != row.state:
        out.append(Emitted("deposit.conflicted", "deposit", str(row.pk), data))
    return out


def _remember(last: DepositReport, confirmations: int, state: str, credited: bool) -> bool:
    """Set what is now reported; True if it changed."""
    now = (confirmations, state, last.credited or credited, state not in POLLED_STATES)
    if (last.confirmations, last.state, last.credited, last.final) == now:
        return False
    last.confirmations, last.state, last.credited, last.final = now
    return True


def _credit_entries(rows) -> dict:
    """network transaction id -> its deposit entries, for the rows credited and not yet
    reported so, in one query (a storm credits thousands in one cycle)."""
    from ledger.models import Transaction

    wanted = [
        row.pk
        for row in rows
        if row.credited_at is not None
        and not getattr(getattr(row, "event_report", None), "credited", False)
    ]
    found: dict = {pk: [] for pk in wanted}
    if wanted:
        entries = Transaction.objects.filter(
            network_transaction_id__in=wanted, kind=Transaction.Kind.DEPOSIT
        ).select_related("destination", "address")
        for entry in entries.order_by("pk"):
            found[entry.network_transaction_id].append(entry)
    return found


def _credits(row: NT, data: dict, credits: dict) -> dict:
    """The deposit with what was credited to whom (the ledger's deposit entries)."""
    entries = credits.get(row.pk, [])
    decimals = row.currency.decimals
    return {
        **data,
        "credits": [
            {
                "user": e.destination.user_id,
                "account": "balance",
                "address": e.address.address if e.address_id else None,
                "amount": format_units(e.amount, decimals),
            }
            for e in entries
        ],
    }


def _confirm_withdrawals(network_ids) -> int:
    if not network_ids:
        return 0
    from broadcasts import events as withdrawal_events
    from broadcasts.models import OutgoingTransaction

    ids = OutgoingTransaction.objects.filter(
        broadcast__network_transaction_id__in=network_ids,
        state=OutgoingTransaction.State.BROADCASTED,
    ).values_list("pk", flat=True)
    return withdrawal_events.emit("withdrawal.confirmed", ids)
