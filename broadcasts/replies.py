"""What a run makes of the node's answer to a send: booked once by its txid, the outgoing
put back in the queue when nothing left, a late reply recorded and flagged."""

import logging
from dataclasses import dataclass, field

from cryptoadmin.errors import CloseRefused
from ledger.backends import BackendError, NotSent
from ledger.models import Wallet

from .models import Broadcast
from .settlement import (
    book_fee,
    fail_broadcast,
    flag_attention,
    record_late_reply,
    settle_broadcasted,
)

log = logging.getLogger(__name__)


@dataclass
class Result:
    """What one run (or one send) did, for the command, the schedule and the tests."""

    sent: int = 0
    fee: int = 0
    message: str = ""
    refused: bool = False
    broadcasts: list = field(default_factory=list)
    # The node's provable refusal of the send (nothing left): the outputs to look into.
    refusal: Exception | None = None

    def __iter__(self):  # unpacks as (broadcasts sent, total fee): `sent, fee = run()`
        return iter((self.sent, self.fee))


@dataclass
class Recovered:
    """What settling the signed broadcasts left by earlier runs did."""

    sent: int = 0
    fee: int = 0
    notes: list = field(default_factory=list)


class Replies:
    """A wallet's handling of the node's answers, with the backend that gave them."""

    def __init__(self, wallet: Wallet, backend=None):
        self.wallet = wallet
        self.backend = backend or wallet.get_backend()

    def not_sent(self, broadcast: Broadcast, exc: Exception, refusal=True) -> Result:
        """The node's answer proves nothing was sent: the outgoing go back to the queue.
        `refusal` False: the node or the transaction, not an output, so nothing to isolate."""
        try:
            fail_broadcast(broadcast, str(exc))
        except CloseRefused:
            # Closed by hand meanwhile (this process stalled past its lease): "never left"
            # agrees with this answer; "reached the network" contradicts it.
            if Broadcast.objects.filter(
                pk=broadcast.pk, state=Broadcast.State.CLOSED_BROADCASTED
            ).exists():
                flag_attention(
                    broadcast.pk,
                    f"the node refused this broadcast's send ({exc}), yet it was "
                    "closed by hand as reached the network: check its txid",
                )
            return Result(
                message=f"{self.wallet.name}: broadcast #{broadcast.pk} not sent: {exc}",
                broadcasts=[broadcast.pk],
            )
        # NotSent is the node (down, starting, refusing us), not an output: nothing to isolate.
        refusal = None if isinstance(exc, NotSent) or not refusal else exc
        return Result(
            message=f"{self.wallet.name}: broadcast #{broadcast.pk} not sent: {exc}",
            broadcasts=[broadcast.pk],
            refusal=refusal,
        )

    # -- sign first, send after (backends with signs_first: bitcoind) ------------------------

    def refused(self, broadcast: Broadcast, what: str) -> Result:
        """The run's answer when `broadcast` did not go as planned: `what` says how, for a
        person, after the wallet and the broadcast's number."""
        return Result(
            refused=True,
            broadcasts=[broadcast.pk],
            message=f"{self.wallet.name}: broadcast #{broadcast.pk} {what}",
        )

    def unlock(self, inputs):
        if inputs:
            try:
                self.backend.lock_coins(inputs, lock=False)
            except BackendError as exc:
                log.warning(
                    "cannot unlock %s coins now (a node restart frees them): %s", len(inputs), exc
                )

    def settle_reply(self, broadcast: Broadcast, txid: str, **close_fields) -> Result:
        """The node's txid for an opened broadcast: booked once, or, if someone closed it by
        hand meanwhile, recorded and flagged (never re-queued, never booked twice)."""
        # The txid first, alone, while it is ours: if booking fails below, operators still find it.
        Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(txid=txid)
        try:
            settle_broadcasted(broadcast, txid, **close_fields)
        except CloseRefused:
            note = record_late_reply(broadcast.pk, txid)
            return self.refused(broadcast, f"LATE REPLY: {note}")
        if broadcast.signed_fee is not None and broadcast.txid == txid:
            fee = book_fee(broadcast.pk, broadcast.signed_fee)  # known since it was signed
        else:
            fee = self.record_fee(broadcast.pk, txid)
        fee_text = self.wallet.currency.amount(fee) if fee is not None else "unknown yet"
        return Result(
            sent=1,
            fee=fee or 0,
            broadcasts=[broadcast.pk],
            message=(
                f"{self.wallet.name}: broadcast #{broadcast.pk} sent {broadcast.transaction_count} "
                f"outgoing in {broadcast.output_count} outputs, txid {txid}, fee {fee_text}"
            ),
        )

    def record_fee(self, broadcast_id: int, txid: str) -> int | None:
        try:
            info = self.backend.get_transaction(txid)
        except BackendError as exc:
            log.warning("fee of %s not known yet: %s", txid, exc)
            return None
        if info.fee is None:
            return None
        return book_fee(broadcast_id, info.fee)
