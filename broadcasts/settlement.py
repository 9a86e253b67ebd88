"""Booking a broadcast's end, each conditional on it still being opened: sent (204 -> 900,
and its fee 920 -> 900, once), failed (its outgoing back in the queue), flagged for a person,
or a late reply after a close by hand."""

import logging

from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from cryptoadmin import faults
from cryptoadmin.errors import CloseRefused
from ledger import rawtx
from ledger import services as ledger
from ledger.models import Account, NetworkTransaction, Transaction
from ledger.signals import deposits_changed

from . import events
from .models import Broadcast, OutgoingTransaction

log = logging.getLogger(__name__)


def book_fee(broadcast_id: int, fee: int) -> int | None:
    """Charge the network fee to the wallet's fee account, once (the fee IS NULL claim)."""
    with transaction.atomic():
        broadcast = (
            Broadcast.objects.select_for_update().select_related("wallet").get(pk=broadcast_id)
        )
        if broadcast.fee is not None:
            return None
        broadcast.fee = fee
        broadcast.save(update_fields=["fee"])
        if fee > 0:
            accounts = ledger.system_accounts(broadcast.wallet)
            ledger.post(
                accounts[Account.Code.FEES],
                accounts[Account.Code.NETWORK],
                fee,
                Transaction.Kind.FEE,
                network_transaction_id=broadcast.network_transaction_id,
                label=broadcast.label,
            )
        return fee


def book_sent(broadcast: Broadcast, txid: str, now):
    """204 -> 900 per user account for the outgoing of this broadcast, and the network
    transaction for the confirmation poller. A constant number of queries for any size.
    Runs inside the caller's transaction, after its conditional UPDATE."""
    wallet = broadcast.wallet
    network_tx, _ = NetworkTransaction.objects.get_or_create(
        currency_id=wallet.currency_id,
        txid=txid,
        type=NetworkTransaction.Type.BROADCAST,
        defaults={"wallet": wallet, "amount": broadcast.total},
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(network_transaction=network_tx)
    network = ledger.system_account(wallet, Account.Code.NETWORK)
    # One entry per user's 204 account (the sum of that user's outgoing in this broadcast):
    # the outgoing rows link each withdrawal to the broadcast, the books stay compact.
    per_account = (
        OutgoingTransaction.objects.filter(
            broadcast=broadcast, state=OutgoingTransaction.State.BROADCASTING
        )
        .values("hold_account_id")
        .annotate(total=Sum("amount"), n=Count("id"))
    )
    ledger.post_many(
        [
            Transaction(
                currency_id=wallet.currency_id,
                source_id=row["hold_account_id"],
                destination_id=network.pk,
                amount=row["total"],
                kind=Transaction.Kind.BROADCASTED,
                network_transaction=network_tx,
                label=f"{broadcast.label}: {row['n']} outgoing",
                created_at=now,
            )
            for row in per_account
        ]
    )
    _mark_sent(broadcast, network_tx)


def _mark_sent(broadcast: Broadcast, network_tx: NetworkTransaction) -> None:
    """Its withdrawals broadcasted, each with its event; our send followed from now on
    (withdrawal.confirmed when its row closes at the threshold)."""
    sending = OutgoingTransaction.objects.filter(
        broadcast=broadcast, state=OutgoingTransaction.State.BROADCASTING
    )
    ids = list(sending.values_list("pk", flat=True))
    sending.filter(pk__in=ids).update(state=OutgoingTransaction.State.BROADCASTED)
    events.emit("withdrawal.broadcasted", ids)
    deposits_changed.send(NetworkTransaction, ids=[network_tx.pk], using="default")


def opened_rows(broadcast: Broadcast, by_hand: bool, now):
    """The rows a settle may change: opened, and for a close by hand its lease over."""
    rows = Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED)
    return rows.filter(Broadcast.lease_over(now)) if by_hand else rows


def settle_broadcasted(
    broadcast: Broadcast,
    txid: str,
    *,
    state=Broadcast.State.BROADCASTED,
    by_hand=False,
    **close_fields,
):
    """Book a broadcast that left the wallet, conditional on it still being opened."""
    now = timezone.now()
    close_fields.setdefault("closed_at", now)
    with transaction.atomic():
        updated = opened_rows(broadcast, by_hand, now).update(
            state=state, txid=txid, broadcasted_at=now, **close_fields
        )
        if not updated:
            raise CloseRefused(
                f"broadcast #{broadcast.pk} is no longer opened, or its send is still in flight"
            )
        book_sent(broadcast, txid, now)
        faults.point("broadcast.before_settle_commit")
    broadcast.refresh_from_db()
    return broadcast


def fail_broadcast(
    broadcast: Broadcast,
    error: str,
    *,
    state=Broadcast.State.FAILED,
    by_hand=False,
    unsigned=False,
    **close_fields,
):
    """Nothing left the wallet: close the broadcast and put its outgoing back in the queue.
    `unsigned`: only while no signed transaction is recorded on it and its lease is over (a
    later run's recovery; its sender may have signed it since the row was read).

    The withdrawals stay locked on 204 and go out with the next broadcast; a user's money is
    never returned behind the operator's back because a node was down for a minute."""
    now = timezone.now()
    close_fields.setdefault("closed_at", now)
    rows = opened_rows(broadcast, by_hand, now)
    if unsigned:
        rows = rows.filter(Broadcast.lease_over(now), raw_tx="")
    with transaction.atomic():
        updated = rows.update(state=state, last_error=error[:4000], **close_fields)
        if not updated:
            raise CloseRefused(
                f"broadcast #{broadcast.pk} is no longer opened, or its send is still in flight"
            )
        ids = list(
            OutgoingTransaction.objects.filter(broadcast=broadcast).values_list("pk", flat=True)
        )
        OutgoingTransaction.objects.filter(pk__in=ids, broadcast=broadcast).update(
            state=OutgoingTransaction.State.QUEUED,
            broadcast=None,
            returned_by=broadcast,
            attempts=F("attempts") + 1,
        )
        events.emit("withdrawal.queued", ids)  # back in the queue for the next broadcast
        faults.point("broadcast.before_fail_commit")
    broadcast.refresh_from_db()
    return broadcast


def flag_attention(broadcast_id: int, note: str):
    log.error("broadcast #%s needs attention: %s", broadcast_id, note)
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast_id)
        broadcast.needs_attention = True
        broadcast.last_error = (
            f"{note}\n{broadcast.last_error}" if broadcast.last_error else note
        )[:4000]
        broadcast.save(update_fields=["needs_attention", "last_error"])


def record_late_reply(broadcast_id: int, txid: str) -> str:
    """A send's txid arrived after its broadcast failed or was closed by hand. Nothing is
    re-queued or booked twice: the txid is recorded, its withdrawals still waiting (queued or
    needing attention, whichever broadcast last gave them back) are taken back and booked as
    sent by this txid, and the broadcast is flagged for a person with what happened.
    Returns that note."""
    now = timezone.now()
    with transaction.atomic():
        broadcast = (
            Broadcast.objects.select_for_update().select_related("wallet").get(pk=broadcast_id)
        )
        who = (
            f"by {broadcast.closed_by} " if broadcast.closed_by_id else ""
        )  # not joined: FOR UPDATE
        if broadcast.state in (Broadcast.State.BROADCASTED, Broadcast.State.CLOSED_BROADCASTED):
            note = _settled_reply(broadcast, txid, who, now)
            if note is None:
                return f"already settled as {txid}"
        elif broadcast.state in (Broadcast.State.CLOSED_FAILED, Broadcast.State.FAILED):
            note = _take_back(broadcast, txid, who, now) + _paid_twice(broadcast)
        else:
            note = f"LATE REPLY: txid {txid} for a broadcast in state {broadcast.state}"
        Broadcast.objects.filter(pk=broadcast.pk).update(
            needs_attention=True,
            late_reply_at=now,
            last_error=(f"{note}\n{broadcast.last_error}" if broadcast.last_error else note)[:4000],
        )
        faults.point("broadcast.before_late_reply_commit")
    log.error("broadcast #%s: %s", broadcast_id, note)
    return note


def _settled_reply(broadcast: Broadcast, txid: str, who: str, now) -> str | None:
    """A late reply for a broadcast already settled: None when it changes nothing."""
    if broadcast.txid != txid:
        return (
            f"LATE REPLY: the node paid this broadcast's outputs as {txid}, but it was "
            f"settled {who}as {broadcast.txid}: if both transactions confirm, the outputs "
            "were paid twice"
        )
    # Its transaction pays every withdrawal it contained: one waiting to be paid again (it was
    # in another broadcast when this one was settled) is paid.
    taken = _take_waiting(broadcast)
    if not taken:
        return None
    book_sent(broadcast, txid, now)
    if broadcast.raw_tx and rawtx.txid(bytes.fromhex(broadcast.raw_tx)) == txid:
        book_fee(broadcast.pk, broadcast.signed_fee)  # once: the fee IS NULL claim
    return (
        f"LATE REPLY: {taken} more outgoing of this broadcast were waiting to be paid "
        f"again; taken back and booked as sent by {txid}, which pays them"
    )


def _take_back(broadcast: Broadcast, txid: str, who: str, now) -> str:
    """A failed broadcast the node paid after all: its withdrawals still waiting are taken
    back and booked as sent by `txid` (in the caller's transaction). Returns the note."""
    if Broadcast.objects.filter(txid=txid).exclude(pk=broadcast.pk).exists():
        return f"LATE REPLY: the node paid it as {txid}, which already settles another broadcast"
    taken = _take_waiting(broadcast)
    # Closed as never left, yet it paid: booked as sent by the machine, the wrong
    # close kept on the row (who, how, why) for the person who looks at it.
    Broadcast.objects.filter(pk=broadcast.pk).update(
        txid=txid,
        **({"state": Broadcast.State.BROADCASTED, "broadcasted_at": now} if taken else {}),
    )
    if taken:
        signed_txid = broadcast.txid
        broadcast.refresh_from_db()
        book_sent(broadcast, txid, now)
        if broadcast.signed_fee is not None and signed_txid == txid:
            # Its own signed bytes: the fee is known, booked with the send (else
            # the books would hold the fee until the next run's missing-fee fill).
            book_fee(broadcast.pk, broadcast.signed_fee)
    return (
        f"LATE REPLY: closed {who}as never left, but the node paid it as {txid}. "
        f"{taken} outgoing still queued were taken back and booked as sent by it."
    )


def _take_waiting(broadcast: Broadcast) -> int:
    """Its withdrawals still waiting to be paid, moved into it (to be booked as sent by it).
    Only while still waiting: a conditional UPDATE on those states (on PostgreSQL it waits for
    a collector holding the rows, then skips what it took)."""
    return OutgoingTransaction.objects.filter(
        memberships__broadcast=broadcast,
        state__in=[OutgoingTransaction.State.QUEUED, OutgoingTransaction.State.NEEDS_ATTENTION],
    ).update(state=OutgoingTransaction.State.BROADCASTING, broadcast=broadcast)


def _paid_twice(broadcast: Broadcast) -> str:
    """What a late payment of a failed broadcast paid twice: its outgoing already in another
    broadcast, or given back to the user since. '' when nothing."""
    note = ""
    resent = list(
        OutgoingTransaction.objects.filter(
            memberships__broadcast=broadcast, broadcast__isnull=False
        )
        .exclude(broadcast=broadcast)
        .values_list("id", "broadcast_id")
    )
    if resent:
        note += (
            " ALREADY SENT AGAIN: outgoing "
            + ", ".join(f"#{o} (broadcast #{b})" for o, b in resent)
            + ": paid twice unless that broadcast never left; recover the difference by "
            "hand."
        )
    # Rejected or cancelled after this broadcast failed: the amount went back to 201,
    # and the node paid it too. Nothing is re-booked; a person recovers it.
    given_back = list(
        OutgoingTransaction.objects.filter(
            memberships__broadcast=broadcast, state__in=OutgoingTransaction.RETURNED_STATES
        ).values_list("id", flat=True)
    )
    if given_back:
        note += (
            " PAID AND GIVEN BACK: outgoing "
            + ", ".join(f"#{o}" for o in given_back)
            + " were returned to the user's 201 after this broadcast failed, yet it paid "
            "them: the user has them twice; recover by hand."
        )
    return note
