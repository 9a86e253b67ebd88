"""The operator's close of an interrupted broadcast by hand, after checking the chain, with
who, how and why recorded; and the acknowledgement of a flagged one."""

from django.db import transaction
from django.utils import timezone

from ledger import actors
from ledger.backends import BackendError
from ledger.txids import parse_txid

from .chain import find_on_chain, verify_paid_by
from .closable import CLOSE_PERM, check_closable
from .errors import CloseError
from .lease import wallet_lock
from .models import Broadcast
from .nonce import nonce_retry_allowed, retry_same_nonce
from .replies import Replies
from .settlement import book_fee, fail_broadcast, settle_broadcasted


def acknowledge_attention(broadcast: Broadcast, user, reason: str) -> Broadcast:
    """A person has dealt with a flagged broadcast: the flag goes, the note stays."""
    actors.require(user, CLOSE_PERM)
    if not (reason or "").strip():
        raise CloseError("say what you did about it")
    with transaction.atomic():
        row = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if not row.needs_attention:
            raise CloseError(f"broadcast #{broadcast.pk} does not need attention")
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
    coins and sending exactly the broadcast's outputs. Booked as a normal success, with
    who/how/why."""
    check_closable(broadcast, user, reason)
    txid = parse_txid(txid)
    if txid is None:
        raise CloseError("a txid is 64 hexadecimal characters")
    backend = backend or broadcast.wallet.get_backend()
    with wallet_lock(broadcast.wallet_id) as got:
        if not got:
            raise CloseError(
                "a broadcaster is working on this wallet right now; try again in a moment"
            )
        info = verify_paid_by(broadcast, txid, backend)
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
    broadcast.refresh_from_db()
    return broadcast


def close_as_never_left(broadcast: Broadcast, user, reason: str, backend=None) -> Broadcast:
    """'It never left': only when the node's wallet has no transaction with its comment (on a
    backend without comments: no send paying its outputs since it opened, and only once a
    retry with its nonce can no longer tell, since that retry is the safe way)."""
    check_closable(broadcast, user, reason)
    backend = backend or broadcast.wallet.get_backend()
    if not getattr(backend, "keeps_comments", True) and nonce_retry_allowed(broadcast):
        raise CloseError(
            "this wallet cannot prove that nothing left; use 'Retry with the same nonce': "
            "it pays once if the first request never did, and is refused if it did"
        )
    with wallet_lock(broadcast.wallet_id) as got:
        if not got:
            raise CloseError(
                "a broadcaster is working on this wallet right now; try again in a moment"
            )
        try:
            found = find_on_chain(broadcast, backend)
        except BackendError as exc:
            raise CloseError(f"cannot search the node's wallet: {exc}") from exc
        if found:
            raise CloseError(
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
        if broadcast.inputs:
            # Its signed transaction can never be sent now: its coins that are left are free.
            Replies(broadcast.wallet, backend).unlock(broadcast.inputs)
    broadcast.refresh_from_db()
    return broadcast


def search_on_chain(broadcast: Broadcast, *, by) -> list[str]:
    """The operator's 'Find on chain' on the close page (see find_on_chain)."""
    actors.require(by, CLOSE_PERM)
    return find_on_chain(broadcast)


def close_by_hand(broadcast: Broadcast, how: str, *, by, reason: str, txid: str = "") -> str:
    """The operator's close of an interrupted broadcast, `how` a Broadcast.CloseMethod.
    Checks the permission, takes the path, writes the admin history entry and returns what
    happened in words. Raises CloseError (nothing written) or PermissionDenied."""
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
    else:
        raise CloseError(f"unknown way to close: {how!r}")
    actors.log_action(by, broadcast, f"Closed by hand: {done}. Reason: {reason.strip()}")
    return done
