"""The operator's close of an interrupted broadcast by hand, after checking the chain, with
who, how and why recorded; and the acknowledgement of a flagged one."""

from django.db import transaction
from django.utils import timezone

from cryptoadmin.errors import CloseRefused
from ledger import actors
from ledger.backends import BackendError
from ledger.txids import parse_txid

from .attempts import unlock
from .chain import coins_left_by, find_on_chain, paying_any, verify_paid_by
from .closable import CLOSE_PERM, check_closable
from .lease import wallet_lock
from .models import Broadcast
from .nonce import nonce_retry_allowed, retry_same_nonce
from .settlement import book_fee, fail_broadcast, settle_broadcasted


def acknowledge_attention(broadcast: Broadcast, user, reason: str) -> Broadcast:
    """A person has dealt with a flagged broadcast: the flag goes, the note stays."""
    actors.require(user, CLOSE_PERM)
    if not (reason or "").strip():
        raise CloseRefused("say what you did about it")
    with transaction.atomic():
        row = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if not row.needs_attention:
            raise CloseRefused(f"broadcast #{broadcast.pk} does not need attention")
        row.needs_attention = False
        note = f"Acknowledged by {user} at {timezone.now():%Y-%m-%d %H:%M}: {reason.strip()}"
        row.last_error = f"{note}\n{row.last_error}"[:4000]
        row.save(update_fields=["needs_attention", "last_error"])
    broadcast.refresh_from_db()
    actors.log_action(user, broadcast, f"Acknowledged: {reason.strip()}")
    return broadcast


def close_as_broadcasted(
    broadcast: Broadcast, txid: str, user, reason: str, backend=None
) -> Broadcast:
    """'It reached the network': the txid must be a wallet transaction spending this wallet's
    coins and sending exactly the broadcast's outputs, and, if the broadcast signed a
    transaction, be that one or spend one of its coins (its other coins are then free).
    Booked as a normal success, with who/how/why."""
    check_closable(broadcast, user, reason)
    txid = parse_txid(txid)
    if txid is None:
        raise CloseRefused("a txid is 64 hexadecimal characters")
    backend = backend or broadcast.wallet.get_backend()
    with wallet_lock(broadcast.wallet_id) as got:
        if not got:
            raise CloseRefused(
                "a broadcaster is working on this wallet right now; try again in a moment"
            )
        info = verify_paid_by(broadcast, txid, backend)
        free = coins_left_by(broadcast, txid, backend)
        with transaction.atomic():
            settle_broadcasted(
                broadcast,
                txid,
                state=Broadcast.State.CLOSED_BROADCASTED,
                by_hand=True,
                closed_at=timezone.now(),
                closed_by=actors.person(user),
                close_method=Broadcast.CloseMethod.REACHED_NETWORK,
                close_reason=reason.strip(),
            )
            if info.fee is not None:
                book_fee(broadcast.pk, info.fee)
        unlock(backend, free)
    broadcast.refresh_from_db()
    return broadcast


def close_as_never_left(broadcast: Broadcast, user, reason: str, backend=None) -> Broadcast:
    """'It never left': only when the node's wallet has no transaction with its comment (on a
    backend without comments: no send paying its outputs since it opened, and only once a
    retry with its nonce can no longer tell, since that retry is the safe way)."""
    check_closable(broadcast, user, reason)
    backend = backend or broadcast.wallet.get_backend()
    if not backend.keeps_comments and nonce_retry_allowed(broadcast):
        raise CloseRefused(
            "this wallet cannot prove that nothing left; use 'Retry with the same nonce': "
            "it pays once if the first request never did, and is refused if it did"
        )
    with wallet_lock(broadcast.wallet_id) as got:
        if not got:
            raise CloseRefused(
                "a broadcaster is working on this wallet right now; try again in a moment"
            )
        try:
            found = find_on_chain(broadcast, backend)
            if not found and not backend.keeps_comments:
                # Past the nonce window only a listing of every send since it opened can tell,
                # and any send paying one of its outputs may be it.
                found = paying_any(broadcast, backend)
        except BackendError as exc:
            raise CloseRefused(f"cannot search the node's wallet: {exc}") from exc
        if found:
            raise CloseRefused(
                f"the node's wallet has {', '.join(found)} for {broadcast.label}: "
                "it left; close it as 'It reached the network'"
            )
        fail_broadcast(
            broadcast,
            broadcast.last_error or "closed by hand: never left",
            state=Broadcast.State.CLOSED_FAILED,
            by_hand=True,
            closed_by=actors.person(user),
            close_method=Broadcast.CloseMethod.NEVER_LEFT,
            close_reason=reason.strip(),
        )
        # A signed one keeps its coins reserved: its withdrawals are paid again only by a
        # transaction spending one of them, so if its bytes reach the network after all, only
        # one of the two can ever confirm (attempts.py).
    broadcast.refresh_from_db()
    return broadcast


def search_on_chain(broadcast: Broadcast, *, by) -> list[str]:
    """The operator's 'Find on chain' on the close page (see find_on_chain)."""
    actors.require(by, CLOSE_PERM)
    return find_on_chain(broadcast)


def close_broadcast_by_hand(
    broadcast: Broadcast, how: str, *, by, reason: str, txid: str = ""
) -> str:
    """The operator's close of an interrupted broadcast, `how` a Broadcast.CloseMethod.
    Checks the permission, takes the path, writes the admin history entry and returns what
    happened in words. Raises CloseRefused (nothing written) or PermissionDenied."""
    actors.require(by, CLOSE_PERM)
    if how == Broadcast.CloseMethod.REACHED_NETWORK:
        close_as_broadcasted(broadcast, txid, by, reason)
        done = f"reached the network as {broadcast.txid}"
    elif how == Broadcast.CloseMethod.SAME_NONCE:
        retry_same_nonce(broadcast, by, reason)
        done = f"retried with the same nonce: reached the network as {broadcast.txid}"
    elif how == Broadcast.CloseMethod.NEVER_LEFT:
        close_as_never_left(broadcast, by, reason)
        done = "never left; its outgoing transactions are back in the queue"
        if broadcast.raw_tx:
            done += (
                ", paid again only by a transaction spending one of its coins (if it reached "
                "the network after all, only one of the two can confirm)"
            )
    else:
        raise CloseRefused(f"unknown way to close: {how!r}")
    actors.log_action(by, broadcast, f"Closed by hand: {done}. Reason: {reason.strip()}")
    return done
