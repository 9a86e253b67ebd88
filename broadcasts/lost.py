"""A sent broadcast that lost: its coins spent by another transaction that confirmed instead
(a reorg that dropped it, a double spend, a conflicting attempt of ours that won). Found as
deposits are, by the poller marking its network transaction conflicted; once the winner is
the currency's polling threshold deep it can never come back, and its booking is reversed
once (900 -> 204 per user, its fee 900 -> 920), its withdrawals back in the queue, paid again
under the one-payment rule (attempts.py), and the broadcast flagged for a person."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from cryptoadmin import faults
from ledger import services as ledger
from ledger.backends import BackendError
from ledger.models import Account, NetworkTransaction, Transaction, Wallet

from .models import Broadcast, OutgoingTransaction

log = logging.getLogger(__name__)


def reverse_lost(wallet: Wallet, backend) -> list[str]:
    """Reverse this wallet's sent broadcasts that provably lost; returns a note for each."""
    rows = Broadcast.objects.filter(
        wallet=wallet,
        state__in=[Broadcast.State.BROADCASTED, Broadcast.State.CLOSED_BROADCASTED],
        reversed_at__isnull=True,
        network_transaction__state=NetworkTransaction.State.CONFLICTED,
    ).order_by("id")
    notes = []
    threshold = wallet.currency.polling_threshold
    for broadcast in rows:
        try:
            confirmations = backend.known_transaction(broadcast.txid)
        except BackendError as exc:
            log.warning("cannot check lost broadcast #%s now: %s", broadcast.pk, exc)
            continue
        # A conflicted transaction's confirmations are minus the depth of the one that won.
        if confirmations is None or -confirmations < threshold:
            continue
        note = reverse(broadcast, -confirmations)
        if note:
            notes.append(note)
    return notes


def reverse(broadcast: Broadcast, depth: int) -> str:
    """Undo a lost broadcast's booking, once (a conditional UPDATE on reversed_at), in one
    database transaction. Returns the note ('' when another run did it)."""
    now = timezone.now()
    note = (
        f"LOST: {broadcast.txid} can never confirm (the transaction spending its coins is "
        f"{depth} blocks deep); its booking is reversed and its withdrawals are back in the "
        "queue. If that other transaction is not ours, the wallet paid it: check the chain."
    )
    with transaction.atomic():
        claimed = Broadcast.objects.filter(pk=broadcast.pk, reversed_at__isnull=True).update(
            reversed_at=now,
            dead_reason=f"lost to a transaction {depth} blocks deep",
            needs_attention=True,
        )
        if not claimed:
            return ""
        _reverse_entries(broadcast, now)
        OutgoingTransaction.objects.filter(
            broadcast=broadcast, state=OutgoingTransaction.State.BROADCASTED
        ).update(state=OutgoingTransaction.State.QUEUED, broadcast=None, returned_by=broadcast)
        row = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        row.last_error = (f"{note}\n{row.last_error}" if row.last_error else note)[:4000]
        row.save(update_fields=["last_error"])
        faults.point("broadcast.before_reverse_commit")
    log.error("broadcast #%s: %s", broadcast.pk, note)
    return note


def _reverse_entries(broadcast: Broadcast, now) -> None:
    """900 -> 204 per user's hold account of what the broadcast booked as sent, and its fee
    900 -> 920, against the same network transaction."""
    wallet = broadcast.wallet
    accounts = ledger.system_accounts(wallet)
    network = accounts[Account.Code.NETWORK]
    per_account = (
        OutgoingTransaction.objects.filter(
            broadcast=broadcast, state=OutgoingTransaction.State.BROADCASTED
        )
        .values("hold_account_id")
        .annotate(total=Sum("amount"))
    )
    rows = [
        Transaction(
            currency_id=wallet.currency_id,
            source_id=network.pk,
            destination_id=row["hold_account_id"],
            amount=row["total"],
            kind=Transaction.Kind.REVERSED,
            network_transaction_id=broadcast.network_transaction_id,
            label=f"{broadcast.label}: lost, reversed",
            created_at=now,
        )
        for row in per_account
    ]
    if broadcast.fee:
        rows.append(
            Transaction(
                currency_id=wallet.currency_id,
                source_id=network.pk,
                destination_id=accounts[Account.Code.FEES].pk,
                amount=broadcast.fee,
                kind=Transaction.Kind.REVERSED,
                network_transaction_id=broadcast.network_transaction_id,
                label=f"{broadcast.label}: lost, fee reversed",
                created_at=now,
            )
        )
    if rows:
        ledger.post_many(rows)
