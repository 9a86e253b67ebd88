"""One refused output never holds back the others: a refused broadcast's outgoing are sent
again without it, the refused one found by halving."""

import logging

from django.db import transaction
from django.db.models import F

from cryptoadmin import faults
from ledger.backends import BackendError, InsufficientFunds

from . import events
from .models import Broadcast, OutgoingTransaction
from .replies import Replies, Result

log = logging.getLogger(__name__)


class Isolation(Replies):
    """The broadcaster's isolation of refused outputs (it collects and sends)."""

    def isolate(self, refused: Broadcast, first: Result) -> Result:
        """The node provably refused a broadcast (an invalid address, dust, a backend's minimum,
        or too little balance): its outgoing are back in the queue. Send the rest without the
        refused outputs, found by halving (oldest half first; a half the node accepts is sent
        as a broadcast of its own, a refused half is halved again), in this run. An output
        refused alone counts a refusal, and leaves the queue for 'needs attention' at the
        third; one refused for too little balance while the wallet cannot cover it does not
        count: it waits for the wallet, and the message says so. Bounded node calls per run;
        stops at the first send whose outcome is not a provable answer."""
        ids = list(
            OutgoingTransaction.objects.filter(
                returned_by=refused, state=OutgoingTransaction.State.QUEUED
            )
            .order_by("id")
            .values_list("id", flat=True)
        )
        halving = _Halving(self, len(ids), first)
        halving.search(ids, first.refusal)
        halving.total.message = halving.summary(refused, first)
        return halving.total

    def _refused_alone(self, outgoing_id: int, exc: Exception):
        """An outgoing the node refused on its own: its refusal counted (and at the third it
        leaves the queue for 'needs attention'), unless the refusal is the wallet's balance
        being short of it. Returns a note, or None for the latter."""
        row = (
            OutgoingTransaction.objects.filter(pk=outgoing_id)
            .values_list("amount", flat=True)
            .first()
        )
        if isinstance(exc, InsufficientFunds) and row is not None:
            try:
                balance = self.backend.get_balance(0)
            except BackendError as error:
                return (
                    f"outgoing #{outgoing_id} refused ({exc}); the balance cannot be read to tell "
                    f"why ({error})"
                )
            if row >= balance:
                return None
        with transaction.atomic():
            moved = _count_refusal(outgoing_id, exc)
            faults.point("broadcast.before_refusal_commit")
        if moved:
            log.error(
                "outgoing #%s refused %s times, needs attention: %s",
                outgoing_id,
                OutgoingTransaction.MAX_REFUSALS,
                exc,
            )
            return (
                f"outgoing #{outgoing_id} NEEDS ATTENTION (refused "
                f"{OutgoingTransaction.MAX_REFUSALS} times: {exc})"
            )
        return f"outgoing #{outgoing_id} refused by the node: {exc}"


def _count_refusal(outgoing_id: int, exc: Exception) -> int:
    """One more refusal; at the third, out of the queue for a person (1 if it moved)."""
    # Conditional on still queued: a person may have cancelled it meanwhile.
    OutgoingTransaction.objects.filter(
        pk=outgoing_id, state=OutgoingTransaction.State.QUEUED
    ).update(refusals=F("refusals") + 1, last_error=str(exc)[:4000])
    moved = OutgoingTransaction.objects.filter(
        pk=outgoing_id,
        state=OutgoingTransaction.State.QUEUED,
        refusals__gte=OutgoingTransaction.MAX_REFUSALS,
    ).update(state=OutgoingTransaction.State.NEEDS_ATTENTION)
    events.emit("withdrawal.needs_attention", [outgoing_id] if moved else [])
    return moved


class _Halving:
    """One isolation: its budget of sends, what it sent, and what it learnt on the way."""

    def __init__(self, broadcaster: Isolation, count: int, first: Result):
        self.broadcaster = broadcaster
        self.budget = min(64, 2 * count.bit_length() + 2)
        self.total = Result(broadcasts=list(first.broadcasts))
        self.notes, self.unfunded, self.stopped = [], [], []

    def send_ids(self, group) -> Result | None:
        broadcast = self.broadcaster.collect(group)
        if broadcast is None:
            return None
        faults.point("broadcast.isolation_after_collect")
        result = self.broadcaster.send(broadcast)
        self.total.broadcasts += result.broadcasts
        self.total.sent += result.sent
        self.total.fee += result.fee
        return result

    def search(self, group, exc):
        if self.stopped:
            return
        if len(group) == 1:
            outcome = self.broadcaster._refused_alone(group[0], exc)
            if outcome is None:
                self.unfunded.append(group[0])
            else:
                self.notes.append(outcome)
            return
        mid = len(group) // 2
        for half in (group[:mid], group[mid:]):
            if self.stopped:
                return
            if self.budget <= 0:
                self.stopped.append(
                    "isolation stopped after its sends for this run; the rest wait for the next"
                )
                return
            self.budget -= 1
            result = self.send_ids(half)
            if result is None:
                self.stopped.append("nothing left to collect")
            elif result.refusal is not None:
                self.search(half, result.refusal)
            elif not result.sent:
                self.stopped.append(result.message)  # outcome unknown, node down, claimed elsewhere
                self.total.refused = self.total.refused or result.refused

    def summary(self, refused: Broadcast, first: Result) -> str:
        parts = [
            f"{self.broadcaster.wallet.name}: broadcast #{refused.pk} refused ({first.refusal}); "
            f"{self.total.sent} broadcast(s) sent without the refused outputs"
        ]
        parts += [n for n in self.notes if n]
        if self.unfunded:
            parts.append(
                f"the wallet's balance cannot cover {len(self.unfunded)} outgoing "
                f"({', '.join(f'#{i}' for i in self.unfunded)}): they wait, oldest first, "
                "until it can"
            )
        parts += self.stopped
        return "; ".join(parts)
