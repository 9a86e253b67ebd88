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
from ledger.models import POLLED_STATES, NetworkTransaction
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


def _candidates(wallet_id, ids, using) -> list[int]:
    deposits = NT.objects.using(using)
    if ids is not None:
        return sorted(deposits.filter(pk__in=list(ids)).values_list("pk", flat=True))
    polled = Q(state__in=POLLED_STATES) | Q(event_report__final=False)
    return sorted(deposits.filter(polled, wallet_id=wallet_id).values_list("pk", flat=True))


def _new_reports(ids, using) -> set[int]:
    """Report rows for deposits never reported; returns those this call inserted."""
    table = DepositReport._meta.db_table
    new = set()
    with connections[using].cursor() as cursor:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor.execute(
                f"INSERT INTO {table} "
                "(network_transaction_id, confirmations, state, credited, final) "
                f"VALUES {', '.join(['(%s, -1, %s, %s, %s)'] * len(chunk))} "
                "ON CONFLICT (network_transaction_id) DO NOTHING RETURNING network_transaction_id",
                [p for pk in chunk for p in (pk, "", False, False)],
            )
            new.update(r[0] for r in cursor.fetchall())
    return new


def report(*, wallet_id=None, ids=None, known=None, using="default") -> int:
    ids = _candidates(wallet_id, ids, using)
    if not ids:
        return 0
    new = _new_reports(ids, using)
    # Locked in id order before the rows are read: a concurrent reporter waits, then compares
    # with what this one reported.
    reports = {
        r.network_transaction_id: r
        for r in DepositReport.objects.using(using)
        .select_for_update()
        .filter(network_transaction_id__in=ids)
        .order_by("network_transaction_id")
    }
    rows = NT.objects.using(using).filter(pk__in=ids).select_related("currency", "wallet")
    emitted, changed, confirmed = [], [], []
    for row in rows.order_by("pk"):
        seen = (known or {}).get(row.pk, current_confirmations(row))
        last = reports[row.pk]
        if row.type == NT.Type.BROADCAST:
            # Our own send reaching the threshold confirms the withdrawals it paid.
            if row.state == NT.State.CLOSED and (row.pk in new or last.state != row.state):
                confirmed.append(row.pk)
        else:
            emitted += _deposit_events(row, last, seen, row.pk in new)
        if _remember(last, seen, row.state, row.credited_at is not None):
            changed.append(last)
    DepositReport.objects.using(using).bulk_update(
        changed,
        ["confirmations", "state", "credited", "final"],
        batch_size=500,
    )
    outbox.emit_many(emitted, using=using)
    return len(emitted) + _confirm_withdrawals(confirmed)


def _deposit_events(row: NT, last: DepositReport, seen: int, new: bool) -> list[Emitted]:
    """What changed since `last`, in order: first sight or confirmations, credit, trouble."""
    data = deposit_data(row, seen)
    out = []
    if new:
        out.append(Emitted("deposit.seen", "deposit", str(row.pk), data))
    elif seen != last.confirmations:
        out.append(Emitted("deposit.confirmations", "deposit", str(row.pk), data))
    if row.credited_at is not None and not last.credited:
        out.append(Emitted("deposit.credited", "deposit", str(row.pk), _credits(row, data)))
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


def _credits(row: NT, data: dict) -> dict:
    """The deposit with what was credited to whom (the ledger's deposit entries)."""
    from ledger.models import Transaction

    entries = Transaction.objects.filter(
        network_transaction_id=row.pk, kind=Transaction.Kind.DEPOSIT
    ).select_related("destination", "address")
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
            for e in entries.order_by("pk")
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
