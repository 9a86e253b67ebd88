"""Re-issuing an interrupted send with its nonce (block.io): within the nonce window the
backend refuses a repeat of a send that went through, so a retry pays at most once."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cryptoadmin import faults
from cryptoadmin.errors import CloseRefused
from ledger import actors
from ledger.backends import AlreadySent, BackendError, InsufficientFunds, InvalidAddress, NotSent
from ledger.models import Wallet

from .chain import find_on_chain, verify_paid_by
from .closable import check_closable
from .lease import lease_from, wallet_lock
from .models import Broadcast
from .replies import Replies
from .settlement import book_sent, opened_rows

log = logging.getLogger(__name__)


def nonce_retry_allowed(broadcast: Broadcast, now=None) -> bool:
    """Within block.io's window a repeated nonce is refused, so repeating cannot pay twice."""
    now = now or timezone.now()
    return bool(
        broadcast.nonce
        and broadcast.opened_at
        and now < broadcast.opened_at + timedelta(seconds=settings.BLOCKIO_NONCE_WINDOW)
    )


def retry_same_nonce(broadcast: Broadcast, user=None, reason: str = "", backend=None) -> Broadcast:
    """Re-issue an interrupted send with its nonce (block.io): within the nonce window the
    backend refuses a repeat of a send that went through, so this pays at most once.
    A txid settles it; a repeat refusal means the first went through, and it is settled by the
    send found paying its outputs, or left for 'It reached the network'. By a person (user)
    or by the broadcaster (user None)."""
    backend = _check_retry(broadcast, user, reason, backend)
    now = timezone.now()
    sending_until, deadline = lease_from(now)
    with wallet_lock(broadcast.wallet_id) as got:
        if not got and user is not None:
            raise CloseRefused(
                "a broadcaster is working on this wallet right now; try again in a moment"
            )
        # The retry is a send in flight like the first: it takes the lease, if it is over.
        claimed = opened_rows(broadcast, True, now).update(sending_until=sending_until)
        if not claimed:
            raise CloseRefused(
                f"broadcast #{broadcast.pk} is no longer opened, or its send is still in flight"
            )
        faults.point("broadcast.after_retry_claim")
        close_fields = _close_fields(user, reason)
        try:
            txid = backend.send_many(
                broadcast.outputs, broadcast.label, nonce=broadcast.nonce, deadline=deadline
            )
        except AlreadySent as exc:
            _end_lease(broadcast, f"retry with the same nonce: {exc}")
            return _settle_found(broadcast, backend, close_fields, exc)
        except Exception as exc:
            raise _retry_failed(broadcast, exc) from exc
        faults.point("broadcast.after_retry_send")
        Replies(broadcast.wallet, backend).settle_reply(broadcast, txid, **close_fields)
    broadcast.refresh_from_db()
    return broadcast


def _check_retry(broadcast: Broadcast, user, reason: str, backend):
    """A retry's checks before anything is claimed; returns the backend to send with."""
    if user is not None:
        check_closable(broadcast, user, reason)
    broadcast.refresh_from_db()
    backend = backend or broadcast.wallet.get_backend()
    if not backend.supports_nonce or not broadcast.nonce:
        raise CloseRefused("this wallet's backend has no nonce to repeat a send safely")
    if not nonce_retry_allowed(broadcast):
        raise CloseRefused(
            f"opened more than {settings.BLOCKIO_NONCE_WINDOW} s ago: the backend could accept the "
            "same nonce again and pay twice; check its sent transactions and close by hand"
        )
    return backend


def _close_fields(user, reason: str) -> dict:
    """How a person's retry closes the broadcast (the broadcaster's own retry closes nothing)."""
    if user is None:
        return {}
    return dict(
        state=Broadcast.State.CLOSED_BROADCASTED,
        closed_by=actors.person(user),
        close_method=Broadcast.CloseMethod.SAME_NONCE,
        close_reason=reason.strip(),
    )


def _retry_failed(broadcast: Broadcast, exc: Exception) -> CloseRefused:
    """The retry did not return a txid: refused (nothing sent, its lease ends) or unknown."""
    if isinstance(exc, (NotSent, InsufficientFunds, InvalidAddress)):
        _end_lease(broadcast, f"retry with the same nonce refused: {exc}")
        return CloseRefused(
            f"the retry was refused and sent nothing ({exc}); the first request's outcome is "
            "still unknown"
        )
    Broadcast.objects.filter(pk=broadcast.pk).update(
        last_error=f"retry: {type(exc).__name__}: {exc}"[:4000]
    )
    return CloseRefused(
        f"the retry's outcome is unknown too ({exc}); try again once its lease is over"
    )


def _end_lease(broadcast: Broadcast, error: str):
    Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(
        sending_until=timezone.now(), last_error=error[:4000]
    )


def _settle_found(broadcast: Broadcast, backend, close_fields: dict, exc) -> Broadcast:
    """The first request went through: settle by the one wallet send paying the outputs."""
    try:
        found = find_on_chain(broadcast, backend)
    except BackendError as error:
        raise CloseRefused(
            f"{exc}: it left, but its transaction cannot be listed now ({error})"
        ) from error
    if len(found) != 1:
        raise CloseRefused(
            f"{exc}: it left; {len(found)} matching sends found, close it as 'It reached the "
            "network' with the txid from the backend's dashboard"
        )
    verify_paid_by(broadcast, found[0], backend)
    now = timezone.now()
    with transaction.atomic():
        updated = opened_rows(broadcast, True, now).update(
            state=close_fields.get("state", Broadcast.State.BROADCASTED),
            txid=found[0],
            broadcasted_at=now,
            closed_at=now,
            **{k: v for k, v in close_fields.items() if k != "state"},
        )
        if not updated:
            raise CloseRefused(f"broadcast #{broadcast.pk} is no longer opened")
        book_sent(broadcast, found[0], now)
    Replies(broadcast.wallet, backend).record_fee(broadcast.pk, found[0])
    broadcast.refresh_from_db()
    return broadcast


def settle_by_nonce(wallet: Wallet, backend) -> int:
    """Interrupted broadcasts of a nonce backend, re-issued with their nonce while that is
    safe: the repeat pays if the first request never did, and is refused if it did."""
    if not backend.supports_nonce:
        return 0
    settled = 0
    # Not interrupted_broadcasts(): this run holds the wallet's lock, so it counts as busy.
    for broadcast in Broadcast.objects.filter(
        Broadcast.lease_over(timezone.now()), wallet=wallet, state=Broadcast.State.OPENED
    ).exclude(nonce=""):
        if not nonce_retry_allowed(broadcast):
            continue
        try:
            retry_same_nonce(broadcast, backend=backend)
        except CloseRefused as exc:
            log.warning("broadcast #%s not settled by nonce: %s", broadcast.pk, exc)
            continue
        settled += 1
    return settled
