"""Broadcasts closed by hand as 'never left' whose send turns up after all: handled as late
replies before a run collects what that close put back in the queue."""

import logging
from datetime import timedelta

from django.utils import timezone

from ledger.backends import BackendError
from ledger.models import Wallet

from .models import Broadcast
from .settlement import record_late_reply

log = logging.getLogger(__name__)


def watch_never_left(wallet: Wallet, backend) -> int:
    """Broadcasts closed as 'never left' in the last day whose comment has since appeared
    on a wallet send (the node finished a send its caller had given up on): handled as a
    late reply, before this run collects the outgoing that close put back in the queue.
    One node call, and only while such broadcasts exist."""
    if not backend.keeps_comments or not hasattr(backend, "list_transactions"):
        return 0
    found_signed = watch_signed_never_left(wallet, backend)
    watched = dict(
        Broadcast.objects.filter(
            wallet=wallet,
            state=Broadcast.State.CLOSED_FAILED,
            txid="",
            closed_at__gte=timezone.now() - timedelta(days=1),
        ).values_list("label", "id")
    )
    if not watched:
        return 0
    try:
        entries = backend.list_transactions(1000)
    except BackendError as exc:
        log.warning("cannot check broadcasts closed as never left: %s", exc)
        return 0
    found = {
        e.get("comment"): e["txid"]
        for e in entries
        if e.get("category") == "send" and e.get("comment") in watched
    }
    for label, txid in found.items():
        record_late_reply(watched[label], txid)
    return len(found) + found_signed


def watch_signed_never_left(wallet: Wallet, backend) -> int:
    """Signed broadcasts failed or closed as 'never left' in the last day whose stored txid
    the node knows after all (it had the bytes; a conflict went away): a late reply, as
    above. Their withdrawals were re-attempted only by transactions conflicting with them."""
    if not backend.signs_first:
        return 0
    watched = Broadcast.objects.filter(
        wallet=wallet,
        state__in=[Broadcast.State.CLOSED_FAILED, Broadcast.State.FAILED],
        signed_first=True,
        closed_at__gte=timezone.now() - timedelta(days=1),
    ).exclude(raw_tx="")
    # Once found, it is marked: never flagged twice for the same news.
    watched = watched.filter(late_reply_at__isnull=True)
    found = 0
    for broadcast_id, txid in watched.values_list("id", "txid"):
        try:
            confirmations = backend.known_transaction(txid)
        except BackendError as exc:
            log.warning("cannot check broadcast #%s closed as never left: %s", broadcast_id, exc)
            continue
        if confirmations is not None and confirmations >= 0:
            record_late_reply(broadcast_id, txid)
            found += 1
    return found
