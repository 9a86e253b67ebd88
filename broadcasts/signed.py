"""Sign first, send after (backends with signs_first: bitcoind): the signed transaction is
committed before it is handed to the node, and an interrupted one is settled by the next run."""

import logging

from django.db import transaction
from django.utils import timezone

from cryptoadmin import faults
from cryptoadmin.errors import CloseRefused
from ledger.backends import (
    BackendError,
    Conflict,
    FeeTooHigh,
    InsufficientFunds,
    InvalidAddress,
    NotSent,
    Refused,
)

from . import attempts, events
from .lease import lease_from
from .models import Broadcast, OutgoingTransaction, WithdrawalRule
from .replies import Recovered, Replies, Result
from .settlement import fail_broadcast

log = logging.getLogger(__name__)


class SignFirst(Replies):
    """The broadcaster's signing-first steps."""

    def fee_policy(self) -> dict:
        rule = WithdrawalRule.objects.filter(currency_id=self.wallet.currency_id).first()
        if rule is None:
            return {}
        return dict(
            fee_rate=rule.fee_rate,
            confirmation_target=rule.confirmation_target,
            max_fee=rule.max_fee,
        )

    def sign_and_send(self, broadcast: Broadcast, deadline: float) -> Result:
        """Build, fund, sign; commit the raw transaction, txid, fee and coins on the opened
        broadcast, lock those coins on the node; only then hand it to the node. Before the
        commit nothing can have been sent (no byte of it left this process), so any failure
        puts the outgoing back in the queue; after it, the next run settles whatever
        happened. A withdrawal signed before is paid only by a transaction spending a coin of
        each earlier signed attempt that may still confirm (attempts.py)."""
        try:
            plan = attempts.plan(broadcast, self.backend, self.wallet.currency.polling_threshold)
        except BackendError as exc:
            return self.not_sent(broadcast, exc, refusal=False)
        if plan.alive is not None:
            return self.settle_as(broadcast, plan.alive)
        if plan.waiting:
            return self.not_sent(broadcast, NotSent(plan.waiting), refusal=False)
        try:
            signed = self.backend.build_signed(
                broadcast.outputs, inputs=plan.coins, deadline=deadline, **self.fee_policy()
            )
        except FeeTooHigh as exc:
            return self.hold_for_fee(broadcast, exc)
        except (InsufficientFunds, InvalidAddress) as exc:
            return self.not_sent(broadcast, exc)
        except BackendError as exc:
            # Refused to sign, node down or a lost reply while building: nothing was signed
            # AND recorded, so nothing can be sent.
            return self.not_sent(broadcast, exc, refusal=False)
        faults.point("broadcast.after_sign")
        if not self._commit_signed(broadcast, signed):
            # Its lease ended first (a later run may fail it), or a later run failed it: never
            # to be sent (its coins were never locked).
            return Result(
                broadcasts=[broadcast.pk],
                message=f"{self.wallet.name}: broadcast #{broadcast.pk} was signed after its "
                "lease ended, or settled elsewhere meanwhile; not sent",
            )
        try:
            # Recorded first, locked second: a lock never outlives the record that frees it.
            self.backend.lock_coins(signed.inputs)
        except BackendError:
            pass  # the node is gone: the send below fails too, and a later run locks again
        faults.point("broadcast.after_sign_commit")
        return self.send_signed(broadcast, deadline)

    def _commit_signed(self, broadcast: Broadcast, signed) -> bool:
        """Record the signed transaction on the opened broadcast, once, while its lease runs;
        False if it is no longer opened or its lease is over (a later run may be failing it)."""
        committed = Broadcast.objects.filter(
            pk=broadcast.pk,
            state=Broadcast.State.OPENED,
            raw_tx="",
            sending_until__gt=timezone.now(),
        ).update(
            raw_tx=signed.raw, txid=signed.txid, signed_fee=signed.fee, inputs=list(signed.inputs)
        )
        if committed:
            broadcast.raw_tx, broadcast.txid, broadcast.signed_fee, broadcast.inputs = (
                signed.raw,
                signed.txid,
                signed.fee,
                list(signed.inputs),
            )
        return bool(committed)

    def send_signed(self, broadcast: Broadcast, deadline: float) -> Result:
        """Hand a committed signed transaction to the node, and settle by its answer."""
        try:
            txid = self.backend.send_raw(broadcast.raw_tx, broadcast.txid, deadline=deadline)
        except Conflict as exc:
            return self.conflicted(broadcast, exc)
        except Refused as exc:
            # The node will never take these bytes, but a copy may be out on the network (a
            # re-send): its withdrawals go back to the queue and its coins stay reserved, so
            # the next attempt spends one of them (attempts.py).
            return self.not_sent(broadcast, exc, refusal=exc.reason == Refused.DUST)
        except BackendError as exc:
            # Node down, restarting, or the reply lost: the same bytes go again next run.
            Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(
                last_error=f"{type(exc).__name__}: {exc}"[:4000]
            )
            log.warning(
                "broadcast #%s signed as %s, send not confirmed: %s",
                broadcast.pk,
                broadcast.txid,
                exc,
            )
            return Result(
                broadcasts=[broadcast.pk],
                message=(
                    f"{self.wallet.name}: broadcast #{broadcast.pk} signed as {broadcast.txid}, "
                    "its send "
                    f"not confirmed ({exc}): the next run sends the same transaction again"
                ),
            )
        faults.point("broadcast.after_raw_send")
        return self.settle_reply(broadcast, txid)

    def conflicted(self, broadcast: Broadcast, exc: Exception) -> Result:
        """The node refuses the signed transaction as spending spent coins: if an earlier
        signed attempt of its withdrawals is what the node holds, that one pays them (settled
        as it); otherwise it is stuck, for a person."""
        try:
            earlier = attempts.alive_earlier(broadcast, self.backend)
        except BackendError as exc:
            return Result(
                broadcasts=[broadcast.pk],
                message=f"{self.wallet.name}: broadcast #{broadcast.pk} conflicts; the node "
                f"cannot tell with what now ({exc}): the next run looks again",
            )
        if earlier is not None:
            return self.settle_as(broadcast, earlier)
        return self.stuck(broadcast, exc)

    def settle_as(self, broadcast: Broadcast, earlier: Broadcast) -> Result:
        """An earlier signed attempt of these withdrawals is on the node: it pays them, and no
        other transaction ever does. This broadcast fails; its own coins not shared with that
        one are free again (it can never confirm while that one does)."""
        try:
            note = attempts.settle_as(broadcast, earlier)
        except CloseRefused:
            return Result(
                broadcasts=[broadcast.pk],
                message=f"{self.wallet.name}: broadcast #{broadcast.pk} was settled elsewhere",
            )
        self.unlock(sorted(set(broadcast.inputs) - set(earlier.inputs)))
        return Result(
            sent=1,
            broadcasts=[broadcast.pk, earlier.pk],
            message=f"{self.wallet.name}: broadcast #{broadcast.pk} not sent: its withdrawals "
            f"are paid by earlier attempt #{earlier.pk}, which the node holds: {note}",
        )

    def stuck(self, broadcast: Broadcast, exc: Exception) -> Result:
        """The signed transaction's inputs are spent by another one, or gone: it can never
        confirm, and whether that other one pays these outputs is for a person to judge.
        Interrupted from now on (its lease ends), with the reason and the other txid."""
        other = getattr(exc, "conflicting_txid", "")
        if not other:
            try:
                other = self.backend.find_spender(broadcast.inputs, exclude=broadcast.txid)
            except BackendError:
                other = ""
        reason = (
            f"CONFLICT: the inputs of {broadcast.txid} are spent by "
            + (f"transaction {other}" if other else "another transaction (not in this wallet)")
            + f" or missing; it can never confirm: {exc}"
        )
        Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(
            stuck_reason=reason[:4000], last_error=reason[:4000], sending_until=timezone.now()
        )
        log.error("broadcast #%s interrupted: %s", broadcast.pk, reason)
        return self.refused(broadcast, f"INTERRUPTED, for a person: {reason}")

    def hold_for_fee(self, broadcast: Broadcast, exc: FeeTooHigh) -> Result:
        """The fee would exceed the currency's cap: nothing was signed. The broadcast fails and
        its outgoing leave the queue for 'needs attention' with the figures (still on 204),
        in one transaction."""
        currency = self.wallet.currency
        note = (
            f"fee cap: this broadcast of {broadcast.transaction_count} outgoing in "
            f"{broadcast.output_count} outputs would pay {currency.amount(exc.fee)} in fee, "
            f"above the {currency.code} cap of {currency.amount(exc.cap)}"
        )
        with transaction.atomic():
            updated = Broadcast.objects.filter(
                pk=broadcast.pk, state=Broadcast.State.OPENED
            ).update(state=Broadcast.State.FAILED, closed_at=timezone.now(), last_error=note)
            if updated:
                held = list(
                    OutgoingTransaction.objects.filter(broadcast=broadcast).values_list(
                        "pk", flat=True
                    )
                )
                OutgoingTransaction.objects.filter(pk__in=held).update(
                    state=OutgoingTransaction.State.NEEDS_ATTENTION,
                    broadcast=None,
                    returned_by=broadcast,
                    last_error=note,
                )
                events.emit("withdrawal.needs_attention", held)
            faults.point("broadcast.before_fee_cap_commit")
        log.error("broadcast #%s not sent: %s", broadcast.pk, note)
        return self.refused(broadcast, f"NOT SENT, its outgoing need attention: {note}")

    def recover_signed(self) -> Recovered:
        """This wallet's opened broadcasts that were signed first, settled by the machine
        before anything new is collected: a signed one the node knows (wallet, mempool or
        chain) is booked; one it does not is sent again, the same bytes, after locking its
        coins again (a node restart drops locks); inputs spent elsewhere leave it for a
        person. One that never recorded a signed transaction and whose lease is over never
        sent anything: its outgoing go back to the queue."""
        out = Recovered()
        if not self.backend.signs_first:
            return out
        rows = Broadcast.objects.filter(
            wallet=self.wallet, state=Broadcast.State.OPENED, signed_first=True, stuck_reason=""
        ).order_by("id")
        for broadcast in rows:
            now = timezone.now()
            if not broadcast.raw_tx:
                # Between the read above and the decision: its sender may sign it meanwhile.
                faults.point("broadcast.before_fail_unsigned")
                note = self._never_signed(broadcast, timezone.now())
                if note:
                    out.notes.append(note)
                continue
            Broadcast.objects.filter(pk=broadcast.pk, recovered_at__isnull=True).update(
                recovered_at=now
            )
            try:
                confirmations = self.backend.known_transaction(broadcast.txid)
            except BackendError as exc:
                out.notes.append(
                    f"{self.wallet.name}: broadcast #{broadcast.pk} not settled yet: {exc}"
                )
                continue
            result = self._settle_signed(broadcast, confirmations, now)
            if result is None:
                continue
            out.sent += result.sent
            out.fee += result.fee
            out.notes.append(result.message)
        return out

    def _never_signed(self, broadcast: Broadcast, now) -> str | None:
        """An opened broadcast with no signed transaction recorded: once its lease is over,
        nothing was sent, and its outgoing go back to the queue. Returns the note, if any."""
        if broadcast.sending_until is not None and broadcast.sending_until > now:
            return None
        try:
            fail_broadcast(
                broadcast,
                "no signed transaction was recorded before its lease ended: nothing was sent",
                unsigned=True,
            )
        except CloseRefused:
            return None
        return (
            f"{self.wallet.name}: broadcast #{broadcast.pk} was never signed: "
            "its outgoing are back in the queue"
        )

    def _settle_signed(self, broadcast: Broadcast, confirmations, now) -> Result | None:
        """A recorded signed broadcast by what the node knows of its txid: booked, stuck, or
        sent again (None when another process took it meanwhile)."""
        if confirmations is not None and confirmations >= 0:
            return self.settle_reply(broadcast, broadcast.txid)
        if confirmations is not None:
            return self.conflicted(
                broadcast,
                Conflict(f"the node's wallet has it conflicted ({confirmations} confirmations)"),
            )
        sending_until, deadline = lease_from(now)
        # The re-send holds the lease like the first send: no close by hand meanwhile.
        if not Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(
            sending_until=sending_until
        ):
            return None
        try:
            self.backend.lock_coins(broadcast.inputs)
        except BackendError:
            pass  # spent or unknown coins: the send below says which
        faults.point("broadcast.before_resend")
        return self.send_signed(broadcast, deadline)
