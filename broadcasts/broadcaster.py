"""The Broadcaster: one run per wallet collects its queue into one broadcast and sends it.

One payment per broadcast, whatever number of processes run and whichever database:
- where the backend signs (bitcoind), a broadcast is built, funded with locked coins and
  signed, and its raw transaction, txid and fee committed, BEFORE anything is sent: the same
  signed bytes can only pay once, so a send whose outcome was lost (crash, timeout, node
  restart) is settled by the next run without a person (`recover_signed`): the node knows
  the txid, or takes the identical bytes again, and it is broadcasted; the node says its
  inputs are spent elsewhere, and it is interrupted for a person (`stuck_reason`). Only one
  broadcast per wallet is ever collected or opened, and none is built while one is opened,
  so a new transaction never spends the coins of a signed, unsent one (their locks may not
  survive a node restart: recovery locks them again before re-sending);
- the database allows only one collected-or-opened broadcast per wallet (partial unique
  index) and a broadcast is opened by a conditional UPDATE (collected -> opened) that also
  sets its lease (`sending_until`), so no broadcast is sent twice;
- "in flight" is that lease, a database fact on SQLite and PostgreSQL alike: the node call's
  timeouts are cut to end before it, and a broadcast is interrupted only once it is over.
  Every close by hand is a conditional UPDATE requiring opened AND lease over; the
  broadcaster's own settle requires opened. A reply that finds its broadcast closed by hand
  re-queues and re-books nothing: it records the txid, takes back the outgoing the close had
  put back in the queue if they are still waiting, and flags the broadcast for a person;
- on PostgreSQL a per-wallet session advisory lock (`wallet_lock`) also keeps one
  broadcaster per wallet across processes and machines (a killed process loses it at once).
The node is never called inside a database transaction.
"""

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from cryptoadmin import faults
from ledger.backends import BackendError, InsufficientFunds, InvalidAddress, NotSent
from ledger.models import Wallet

from .isolation import Isolation
from .lease import lease_from, wallet_lock
from .lost import reverse_lost
from .models import Broadcast, BroadcastMember, OutgoingTransaction
from .nonce import settle_by_nonce
from .replies import Result
from .settlement import book_fee
from .signed import SignFirst
from .watch import watch_never_left

log = logging.getLogger(__name__)


class Broadcaster(SignFirst, Isolation):
    """One wallet's runs: settle what earlier runs left, then collect, open and send; the
    signing, isolating and reply steps are those of its bases."""

    def run(self) -> Result:
        """Collect this wallet's queue into one broadcast and send it, once."""
        with wallet_lock(self.wallet.pk) as got:
            if not got:
                return Result(message=f"{self.wallet.name}: another broadcaster is working on it")
            filled = self.fill_missing_fees()
            lost = reverse_lost(self.wallet, self.backend)
            watch_never_left(self.wallet, self.backend)
            settled = settle_by_nonce(self.wallet, self.backend)
            recovered = self.recover_signed()
            settled += recovered.sent
            filled += recovered.fee
            held = self._held_by_opened(settled, filled, recovered.notes)
            if held is not None:
                return held
            try:
                # A cheap read first: when the node is down nothing is collected or marked.
                self.backend.block_height()
            except BackendError as exc:
                return Result(
                    fee=filled,
                    message=f"{self.wallet.name}: node not answering, nothing collected: {exc}",
                )
            result = self._collect_and_send(filled)
            if settled:
                result.sent += settled
                result.message = (
                    f"{self.wallet.name}: {settled} interrupted broadcast(s) settled by the "
                    "machine; " + result.message
                )
            if recovered.notes or lost:
                result.message = "; ".join(lost + recovered.notes + [result.message])
            return result

    def _held_by_opened(self, settled: int, filled: int, notes: list) -> Result | None:
        """The run's answer while this wallet has an opened broadcast (nothing new is built
        then), or None when it has none."""
        opened = list(
            Broadcast.objects.filter(wallet=self.wallet, state=Broadcast.State.OPENED)
            .order_by("id")
            .values_list("id", "sending_until", "signed_first", "stuck_reason")
        )
        if not opened:
            return None
        now = timezone.now()
        # Still sending, or signed and the machine's to send again: nobody is needed.
        waiting = [
            i
            for i, until, signed, stuck in opened
            if (until is not None and until > now) or (signed and not stuck)
        ]
        if len(waiting) == len(opened):
            return Result(
                sent=settled,
                fee=filled,
                message="; ".join(
                    notes
                    + [
                        f"{self.wallet.name}: broadcast(s) "
                        f"{', '.join(f'#{i}' for i in waiting)} "
                        "still sending (a signed one is sent again on the next run)"
                    ]
                ),
            )
        return Result(
            refused=True,
            sent=settled,
            fee=filled,
            message="; ".join(
                notes
                + [
                    f"{self.wallet.name}: refusing to broadcast: interrupted broadcast(s) "
                    f"{', '.join(f'#{i}' for i, *_ in opened if i not in waiting)} "
                    "must be closed by hand first"
                ]
            ),
        )

    def _collect_and_send(self, filled: int) -> Result:
        broadcast = self.collect()
        if broadcast is None:
            return Result(fee=filled, message=f"{self.wallet.name}: nothing to send")
        faults.point("broadcast.after_collect")
        result = self.send(broadcast)
        if result.refusal is not None:
            result = self.isolate(broadcast, result)
        result.fee += filled
        return result

    def collect(self, ids=None) -> Broadcast | None:
        """A collected broadcast of this wallet: one left by a crash before opening, or a new one
        (of the queued rows among `ids` when given: the isolation of a refused output).
        Only queued rows: approved, or never needing approval."""
        with transaction.atomic():
            leftover = Broadcast.objects.filter(
                wallet=self.wallet, state=Broadcast.State.COLLECTED
            ).first()
            if leftover is not None:
                return leftover
            queued = OutgoingTransaction.objects.filter(
                wallet=self.wallet, state=OutgoingTransaction.State.QUEUED
            )
            if ids is not None:
                queued = queued.filter(id__in=ids)
            rows = list(
                queued.select_for_update(skip_locked=True)
                .order_by("id")
                .values_list("id", "address", "amount")
            )
            if not rows:
                return None
            broadcast = self._new_broadcast(rows)
            # Still queued: another collector may have taken a row between our read and now
            # (SQLite has no row locks); it then stays with the broadcast that took it.
            taken = OutgoingTransaction.objects.filter(
                id__in=[r[0] for r in rows],
                state=OutgoingTransaction.State.QUEUED,
            ).update(state=OutgoingTransaction.State.BROADCASTING, broadcast=broadcast)
            if taken != len(rows):
                transaction.set_rollback(True)
                return None
            BroadcastMember.objects.bulk_create(
                [BroadcastMember(broadcast=broadcast, outgoing_id=r[0]) for r in rows]
            )
            return broadcast

    def _new_broadcast(self, rows) -> Broadcast:
        """The broadcast paying these (id, address, amount) rows, one output per address."""
        outputs: dict[str, int] = {}
        for _, address, amount in rows:
            outputs[address] = outputs.get(address, 0) + amount
        broadcast = Broadcast.objects.create(
            wallet=self.wallet,
            outputs=outputs,
            output_count=len(outputs),
            transaction_count=len(rows),
            total=sum(outputs.values()),
        )
        broadcast.label = f"cryptoadmin-broadcast-{broadcast.pk}"
        Broadcast.objects.filter(pk=broadcast.pk).update(label=broadcast.label)
        return broadcast

    def send(self, broadcast: Broadcast) -> Result:
        deadline = self._open(broadcast)
        if deadline is None:
            return Result(
                message=(
                    f"{self.wallet.name}: broadcast #{broadcast.pk} was claimed by another process"
                )
            )
        faults.point("broadcast.after_open")
        if broadcast.signed_first:
            return self.sign_and_send(broadcast, deadline)
        try:
            txid = self.backend.send_many(
                broadcast.outputs, broadcast.label, nonce=broadcast.nonce, deadline=deadline
            )
        except (NotSent, InsufficientFunds, InvalidAddress) as exc:
            return self.not_sent(broadcast, exc)
        except Exception as exc:
            # Outcome unknown (AlreadySent included: an earlier request with this nonce went
            # through): leave it opened; interrupted once its lease is over.
            Broadcast.objects.filter(pk=broadcast.pk).update(
                last_error=f"{type(exc).__name__}: {exc}"[:4000]
            )
            log.error("broadcast #%s interrupted: %r", broadcast.pk, exc)
            return self.refused(
                broadcast,
                f"INTERRUPTED (outcome unknown: {exc}); close it by hand after checking the chain",
            )
        faults.point("broadcast.after_send")
        return self.settle_reply(broadcast, txid)

    def _open(self, broadcast: Broadcast) -> float | None:
        """Claim a collected broadcast (collected -> opened) with the send's lease and a fresh
        nonce; the node call's deadline, or None if another process claimed it."""
        now = timezone.now()
        sending_until, deadline = lease_from(now)
        nonce = uuid.uuid4().hex
        # The claim, committed on its own before the node is called, with the send's lease and
        # its nonce: from here on nobody settles it until the lease is over.
        signs_first = self.backend.signs_first
        claimed = Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.COLLECTED).update(
            state=Broadcast.State.OPENED,
            opened_at=now,
            sending_until=sending_until,
            nonce=nonce,
            signed_first=signs_first,
        )
        if not claimed:
            return None
        broadcast.state, broadcast.opened_at, broadcast.sending_until, broadcast.nonce = (
            Broadcast.State.OPENED,
            now,
            sending_until,
            nonce,
        )
        broadcast.signed_first = signs_first
        return deadline

    def fill_missing_fees(self) -> int:
        """Fees of sent broadcasts whose lookup failed earlier (one batched node call)."""
        missing = dict(
            Broadcast.objects.filter(
                wallet=self.wallet,
                fee__isnull=True,
                state__in=[Broadcast.State.BROADCASTED, Broadcast.State.CLOSED_BROADCASTED],
            ).values_list("txid", "id")
        )
        if not missing:
            return 0
        if not self.backend.keeps_comments:
            # block.io tells a fee only in the withdraw's reply; otherwise it is what the
            # wallet's inputs held less the outputs, learnt by checking them.
            for txid in missing:
                try:
                    self.backend.spends_own_coins(txid)
                except BackendError as exc:
                    log.warning("cannot read the inputs of %s now: %s", txid, exc)
        try:
            infos = self.backend.get_transactions(list(missing))
        except BackendError as exc:
            log.warning("cannot fill missing fees now: %s", exc)
            return 0
        total = 0
        for txid, info in infos.items():
            if not isinstance(info, BackendError) and info.fee is not None:
                total += book_fee(missing[txid], info.fee) or 0
        return total


def broadcast_wallets(wallets=None) -> list[Result]:
    """One Broadcaster run per enabled wallet (the schedule and the command)."""
    if wallets is None:
        wallets = Wallet.objects.active().select_related("currency")
    results = []
    for wallet in wallets:
        try:
            results.append(Broadcaster(wallet).run())
        except BackendError as exc:
            results.append(Result(message=f"{wallet.name}: {exc}"))
    return results
