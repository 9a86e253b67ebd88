"""Outgoing transactions and the Broadcaster.

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

from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from cryptoadmin import faults
from ledger import actors
from ledger import services as ledger
from ledger.backends import (
    AlreadySent,
    BackendError,
    Conflict,
    FeeTooHigh,
    InsufficientFunds,
    InvalidAddress,
    NotSent,
    Refused,
)
from ledger.errors import CryptoadminError
from ledger.models import Account, NetworkTransaction, Transaction, Wallet
from ledger.money import AmountError, to_units
from ledger.txids import parse_txid

from .models import Broadcast, OutgoingTransaction, WithdrawalRule

log = logging.getLogger(__name__)

# First key of the two-int advisory lock; the second is the wallet id.
LOCK_CLASS = 0x4341_4231  # "CAB1"

# The permissions of the operator flows below (checked here, through ledger.actors).
CLOSE_PERM = "broadcasts.close_broadcast_by_hand"
QUEUE_PERM = "broadcasts.queue_outgoingtransaction"
APPROVE_PERM = "broadcasts.approve_outgoingtransaction"
CANCEL_PERM = "broadcasts.cancel_outgoingtransaction"


class OutgoingError(CryptoadminError, ValueError):
    """A withdrawal that cannot be queued; nothing was written. `field` names the input at
    fault (user_id, amount, address) when there is one, so a form can show it there."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class CloseError(CryptoadminError, ValueError):
    """A close by hand refused; nothing was written. The message says why."""


class DecisionError(CryptoadminError, ValueError):
    """An approval, rejection or cancellation refused (no permission, same person, no
    reason, or someone else acted first); nothing was written. The message says why."""


# -- the per-wallet lock ---------------------------------------------------------------------


def _is_postgres():
    return connection.vendor == "postgresql"


@contextmanager
def wallet_lock(wallet_id: int):
    """Yields True if this connection now holds the wallet's broadcaster lock, else False.

    A session-level advisory lock: not tied to a transaction, so the broadcaster can commit
    its steps while keeping it, and PostgreSQL drops it when the holder's connection dies.
    On SQLite (single machine, demo) it always yields True: the unique index and the
    conditional UPDATE still keep one attempt per broadcast.
    """
    if not _is_postgres():
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, wallet_id])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, wallet_id])


def busy_wallet_ids() -> set[int]:
    """Wallets whose broadcaster lock some live connection holds (one query)."""
    if not _is_postgres():
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT objid FROM pg_locks "
            "WHERE locktype = 'advisory' AND classid = %s AND objsubid = 2 AND granted",
            [LOCK_CLASS],
        )
        return {row[0] for row in cursor.fetchall()}


def interrupted_broadcasts():
    """Opened, never closed, their send's lease over, (PostgreSQL) no live broadcaster
    holding their wallet, and not the machine's to settle: a broadcast signed first is
    settled by the next run (sent again, or found) unless its inputs were spent elsewhere."""
    return (
        Broadcast.objects.filter(Broadcast.lease_over(timezone.now()), state=Broadcast.State.OPENED)
        .exclude(signed_first=True, stuck_reason="")
        .exclude(wallet_id__in=busy_wallet_ids())
    )


def needing_attention():
    """Closed broadcasts a late reply contradicted: a person must look at them."""
    return Broadcast.objects.filter(needs_attention=True)


# -- the send's lease ------------------------------------------------------------------------


def send_budget() -> float:
    """Seconds the node calls of one send may take: the gathering reads, then the one
    state-changing call, whose own timeouts are cut to what is left."""
    return 2 * settings.NODE_RPC_TIMEOUT


def lease_length() -> timedelta:
    return timedelta(seconds=send_budget() + settings.BROADCAST_LEASE_MARGIN)


def _lease_from(now):
    """(sending_until for the database, deadline for the node call on this process's clock)."""
    return now + lease_length(), time.monotonic() + send_budget()


# -- queueing --------------------------------------------------------------------------------


def _wallet_for(currency, wallet):
    if wallet is not None:
        if wallet.currency_id != currency.pk:
            raise OutgoingError(f"wallet {wallet.name} is not a {currency.code} wallet")
        return wallet
    wallet = Wallet.objects.filter(currency=currency, enabled=True).order_by("id").first()
    if wallet is None:
        raise OutgoingError(f"no enabled {currency.code} wallet to send from")
    return wallet


def check_external(
    account: Account, address: str, amount: int, wallet: Wallet | None = None
) -> Wallet:
    """Every check of send_external that does not need the lock. Returns the paying wallet."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise OutgoingError(f"the amount must be integer base units, got {type(amount).__name__}")
    if amount <= 0:
        raise OutgoingError("the amount must be greater than zero")
    if account.code != Account.Code.BALANCE or account.user_id is None:
        raise OutgoingError("withdrawals are paid from a user's 201 balance account")
    currency = account.currency
    if not currency.enabled:
        raise OutgoingError(f"{currency.code} is disabled: no withdrawals")
    wallet = _wallet_for(currency, wallet)
    if not wallet.enabled:
        raise OutgoingError(f"wallet {wallet.name} is disabled")
    address = (address or "").strip()
    if not address:
        raise OutgoingError("a destination address is required")
    try:
        valid = wallet.get_backend().validate_address(address)
    except BackendError as exc:
        raise OutgoingError(f"cannot check the address now: {exc}") from exc
    if not valid:
        raise OutgoingError(
            f"{address!r} is not a valid {currency.code} address on {currency.network}"
        )
    return wallet


def send_external(
    account: Account,
    address: str,
    amount: int,
    *,
    wallet: Wallet | None = None,
    created_by=None,
    label: str = "",
) -> OutgoingTransaction:
    """Queue a withdrawal: 201 -> 204 and a queued OutgoingTransaction, in one transaction."""
    wallet = check_external(account, address, amount, wallet)  # node call: before any lock
    address = address.strip()
    rule = WithdrawalRule.objects.filter(currency_id=account.currency_id).first()
    check_minimum(rule, account.currency, amount)
    hold = ledger.user_account(account.user_id, account.currency, Account.Code.WITHDRAW_LOCKED)
    with transaction.atomic():
        # Serialises withdrawals of one user so two cannot both spend the same balance (nor
        # both slip under the daily limit).
        Account.objects.select_for_update().get(pk=account.pk)
        available = ledger.balance(account)
        if available < amount:
            raise OutgoingError(
                f"too little balance: {account.currency.amount(available)} available, "
                f"{account.currency.amount(amount)} requested"
            )
        why = approval_needed(rule, account, amount)
        entry = ledger.post(
            account,
            hold,
            amount,
            Transaction.Kind.PENDING_OUTGOING,
            label=label or f"withdrawal to {address}",
            created_by=created_by,
        )
        return OutgoingTransaction.objects.create(
            wallet=wallet,
            currency_id=account.currency_id,
            account=account,
            hold_account=hold,
            address=address,
            amount=amount,
            lock_entry=entry,
            label=label,
            created_by=created_by,
            approval_reason=why,
            state=OutgoingTransaction.State.AWAITING_APPROVAL
            if why
            else OutgoingTransaction.State.QUEUED,
        )


# -- the currency's rules, approval, rejection, cancellation ---------------------------------


def check_minimum(rule: WithdrawalRule | None, currency, amount: int):
    if rule is not None and amount < rule.minimum_amount:
        raise OutgoingError(
            f"the minimum {currency.code} withdrawal is {currency.amount(rule.minimum_amount)}; "
            f"{currency.amount(amount)} requested"
        )


def approval_needed(rule: WithdrawalRule | None, account: Account, amount: int) -> str:
    """Why this withdrawal must wait for a second person ('' if it need not). The daily total
    is the user's withdrawals of the last 24 hours that were not given back, plus this one;
    the caller holds the user's 201 row lock, so two withdrawals cannot both slip under it."""
    if rule is None:
        return ""
    fmt, code = account.currency.format, account.currency.code
    if rule.approval_above is not None and amount > rule.approval_above:
        return f"amount {fmt(amount)} {code} is above {fmt(rule.approval_above)} {code}"
    if rule.daily_limit is not None:
        earlier = (
            OutgoingTransaction.objects.filter(
                account=account, created_at__gte=timezone.now() - timedelta(days=1)
            )
            .exclude(state__in=OutgoingTransaction.RETURNED_STATES)
            .aggregate(t=Sum("amount"))["t"]
            or 0
        )
        if earlier + amount > rule.daily_limit:
            return (
                f"the user's withdrawals of the last 24 hours would reach {fmt(earlier + amount)} "
                f"{code}, above the daily {fmt(rule.daily_limit)} {code}"
            )
    return ""


def _lost_race(outgoing_id: int, verb: str) -> DecisionError:
    row = OutgoingTransaction.objects.filter(pk=outgoing_id).values_list("state", flat=True).first()
    label = OutgoingTransaction.State(row).label if row else "gone"
    return DecisionError(
        f"outgoing #{outgoing_id} cannot be {verb}: it is {label} now (someone acted first)"
    )


def approve(outgoing: OutgoingTransaction, user) -> OutgoingTransaction:
    """Four eyes: a person other than the one who queued it (the superuser included) lets an
    awaiting withdrawal into the queue. A conditional UPDATE on 'awaiting approval'."""
    if not actors.allowed(user, APPROVE_PERM):
        raise DecisionError("you do not have the permission to approve outgoing transactions")
    if outgoing.created_by_id is not None and outgoing.created_by_id == user.pk:
        raise DecisionError(
            f"outgoing #{outgoing.pk} was queued by you: another person must approve it"
        )
    updated = (
        OutgoingTransaction.objects.filter(
            pk=outgoing.pk,
            state=OutgoingTransaction.State.AWAITING_APPROVAL,
        )
        .exclude(created_by=user)
        .update(
            state=OutgoingTransaction.State.QUEUED, approved_by=user, approved_at=timezone.now()
        )
    )
    if not updated:
        raise _lost_race(outgoing.pk, "approved")
    outgoing.refresh_from_db()
    return outgoing


def _give_back(
    outgoing: OutgoingTransaction, user, reason: str, state, from_states, verb
) -> OutgoingTransaction:
    if not actors.allowed(user, CANCEL_PERM):
        raise DecisionError(
            f"you do not have the permission to {verb.rstrip('ed')} outgoing transactions"
        )
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("give a reason")
    now = timezone.now()
    # The old state is the one the person saw (the instance they acted on): if anyone changed
    # it since (an approval, the broadcaster), they decided on something else, and are told.
    seen = outgoing.state
    if seen not in from_states:
        raise DecisionError(
            f"outgoing #{outgoing.pk} is {OutgoingTransaction.State(seen).label}: "
            f"it cannot be {verb}"
        )
    row = OutgoingTransaction.objects.select_related("account", "hold_account").get(pk=outgoing.pk)
    with transaction.atomic():
        entry = ledger.post(
            row.hold_account,
            row.account,
            row.amount,
            Transaction.Kind.RETURNED,
            label=f"outgoing #{row.pk} {verb}: {reason}"[:255],
            created_by=user,
            created_at=now,
        )
        faults.point("outgoing.before_return_update")
        # The conditional UPDATE decides, with the entry (the CHECK wants both at once): against
        # another person, an approval or a collecting broadcaster (on PostgreSQL it waits for a
        # collector's row lock, then finds the row taken) exactly one wins; the loser's entry
        # is rolled back with its transaction.
        updated = OutgoingTransaction.objects.filter(pk=row.pk, state=seen).update(
            state=state, closed_by=user, closed_at=now, close_reason=reason, return_entry=entry
        )
        if not updated:
            raise _lost_race(row.pk, verb)
        faults.point("outgoing.before_return_commit")
    outgoing.refresh_from_db()
    return outgoing


def reject(outgoing: OutgoingTransaction, user, reason: str) -> OutgoingTransaction:
    """An awaiting withdrawal refused: its amount goes back 204 -> 201 in the same transaction."""
    return _give_back(
        outgoing,
        user,
        reason,
        OutgoingTransaction.State.REJECTED,
        [OutgoingTransaction.State.AWAITING_APPROVAL],
        "rejected",
    )


def cancel(outgoing: OutgoingTransaction, user, reason: str) -> OutgoingTransaction:
    """A withdrawal not in a broadcast (awaiting, queued or needing attention) stopped: its
    amount goes back 204 -> 201 in the same transaction. One in a broadcast cannot be."""
    return _give_back(
        outgoing,
        user,
        reason,
        OutgoingTransaction.State.CANCELLED,
        list(OutgoingTransaction.STOPPABLE_STATES),
        "cancelled",
    )


def who_may_approve(outgoing: OutgoingTransaction) -> list[str]:
    """The usernames of the active people who could approve this withdrawal: the permission
    (directly, through a group, or as superuser) and not the person who queued it."""
    from django.contrib.auth import get_user_model

    people = get_user_model().objects.with_perm(
        APPROVE_PERM, include_superusers=True, backend="django.contrib.auth.backends.ModelBackend"
    )
    if outgoing.created_by_id is not None:
        people = people.exclude(pk=outgoing.created_by_id)
    return sorted(people.values_list(get_user_model().USERNAME_FIELD, flat=True))


def awaiting_approval():
    return OutgoingTransaction.objects.filter(state=OutgoingTransaction.State.AWAITING_APPROVAL)


def outgoing_needing_attention():
    return OutgoingTransaction.objects.filter(state=OutgoingTransaction.State.NEEDS_ATTENTION)


def queue_withdrawal(
    user_id: str,
    currency,
    address: str,
    amount_text: str,
    *,
    by,
    wallet: Wallet | None = None,
    label: str = "",
) -> OutgoingTransaction:
    """The operator's "queue an outgoing transaction": an existing user's 201 account only (a
    typo must not open a new user's books), the amount as typed in currency units, the
    address checked by the node once (in send_external), then queued. Raises OutgoingError
    (nothing written; `field` says which input) or PermissionDenied."""
    actors.require(by, QUEUE_PERM)
    if wallet is not None and currency is None:
        currency = wallet.currency
    try:
        amount = to_units(amount_text, currency.decimals)
    except AmountError as exc:
        raise OutgoingError(str(exc), field="amount") from None
    account = (
        Account.objects.filter(
            user_id=(user_id or "").strip(), currency=currency, code=Account.Code.BALANCE
        )
        .select_related("currency")
        .first()
    )
    if account is None:
        raise OutgoingError(f"no {currency.code} account for this user", field="user_id")
    out = send_external(
        account, address, amount, wallet=wallet, created_by=actors.person(by), label=label
    )
    actors.log_action(by, out, "Queued", added=True)
    return out


# -- the broadcaster -------------------------------------------------------------------------


@dataclass
class Result:
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
    sent: int = 0
    fee: int = 0
    notes: list = field(default_factory=list)


class Broadcaster:
    def __init__(self, wallet: Wallet, backend=None):
        self.wallet = wallet
        self.backend = backend or wallet.get_backend()

    def run(self) -> Result:
        """Collect this wallet's queue into one broadcast and send it, once."""
        with wallet_lock(self.wallet.pk) as got:
            if not got:
                return Result(message=f"{self.wallet.name}: another broadcaster is working on it")
            filled = self.fill_missing_fees()
            self.watch_never_left()
            settled = self.settle_by_nonce()
            recovered = self.recover_signed()
            settled += recovered.sent
            filled += recovered.fee
            opened = list(
                Broadcast.objects.filter(wallet=self.wallet, state=Broadcast.State.OPENED)
                .order_by("id")
                .values_list("id", "sending_until", "signed_first", "stuck_reason")
            )
            if opened:
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
                            recovered.notes
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
                        recovered.notes
                        + [
                            f"{self.wallet.name}: refusing to broadcast: interrupted broadcast(s) "
                            f"{', '.join(f'#{i}' for i, *_ in opened if i not in waiting)} "
                            "must be closed by hand first"
                        ]
                    ),
                )
            try:
                # A cheap read first: when the node is down nothing is collected or marked.
                self.backend.block_height()
            except BackendError as exc:
                return Result(
                    fee=filled,
                    message=f"{self.wallet.name}: node not answering, nothing collected: {exc}",
                )
            broadcast = self.collect()
            if broadcast is None:
                result = Result(fee=filled, message=f"{self.wallet.name}: nothing to send")
            else:
                faults.point("broadcast.after_collect")
                result = self.send(broadcast)
                if result.refusal is not None:
                    result = self.isolate(broadcast, result)
                result.fee += filled
            if settled:
                result.sent += settled
                result.message = (
                    f"{self.wallet.name}: {settled} interrupted broadcast(s) settled by the "
                    "machine; " + result.message
                )
            if recovered.notes:
                result.message = "; ".join(recovered.notes + [result.message])
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
            # Still queued: another collector may have taken a row between our read and now
            # (SQLite has no row locks); it then stays with the broadcast that took it.
            taken = OutgoingTransaction.objects.filter(
                id__in=[r[0] for r in rows],
                state=OutgoingTransaction.State.QUEUED,
            ).update(state=OutgoingTransaction.State.BROADCASTING, broadcast=broadcast)
            if taken != len(rows):
                transaction.set_rollback(True)
                return None
            return broadcast

    def send(self, broadcast: Broadcast) -> Result:
        now = timezone.now()
        sending_until, deadline = _lease_from(now)
        nonce = uuid.uuid4().hex
        # The claim, committed on its own before the node is called, with the send's lease and
        # its nonce: from here on nobody settles it until the lease is over.
        signs_first = getattr(self.backend, "signs_first", False)
        claimed = Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.COLLECTED).update(
            state=Broadcast.State.OPENED,
            opened_at=now,
            sending_until=sending_until,
            nonce=nonce,
            signed_first=signs_first,
        )
        if not claimed:
            return Result(
                message=(
                    f"{self.wallet.name}: broadcast #{broadcast.pk} was claimed by another process"
                )
            )
        broadcast.state, broadcast.opened_at, broadcast.sending_until, broadcast.nonce = (
            Broadcast.State.OPENED,
            now,
            sending_until,
            nonce,
        )
        broadcast.signed_first = signs_first
        faults.point("broadcast.after_open")
        if signs_first:
            return self.sign_and_send(broadcast, deadline)
        try:
            txid = self.backend.send_many(
                broadcast.outputs, broadcast.label, nonce=nonce, deadline=deadline
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

    def not_sent(self, broadcast: Broadcast, exc: Exception, refusal=True) -> Result:
        """The node's answer proves nothing was sent: the outgoing go back to the queue.
        `refusal` False: the node or the transaction, not an output, so nothing to isolate."""
        try:
            fail_broadcast(broadcast, str(exc))
        except CloseError:
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
        happened."""
        try:
            signed = self.backend.build_signed(broadcast.outputs, **self.fee_policy())
        except FeeTooHigh as exc:
            return self.hold_for_fee(broadcast, exc)
        except (InsufficientFunds, InvalidAddress) as exc:
            return self.not_sent(broadcast, exc)
        except BackendError as exc:
            # Refused to sign, node down or a lost reply while building: nothing was signed
            # AND recorded, so nothing can be sent.
            return self.not_sent(broadcast, exc, refusal=False)
        faults.point("broadcast.after_sign")
        committed = Broadcast.objects.filter(
            pk=broadcast.pk, state=Broadcast.State.OPENED, raw_tx=""
        ).update(
            raw_tx=signed.raw, txid=signed.txid, signed_fee=signed.fee, inputs=list(signed.inputs)
        )
        if not committed:
            # Failed by a later run once this process's lease was over: never to be sent (its
            # coins were never locked).
            return Result(
                broadcasts=[broadcast.pk],
                message=f"{self.wallet.name}: broadcast #{broadcast.pk} was settled elsewhere "
                "while it was signed; not sent",
            )
        broadcast.raw_tx, broadcast.txid, broadcast.signed_fee, broadcast.inputs = (
            signed.raw,
            signed.txid,
            signed.fee,
            list(signed.inputs),
        )
        try:
            # Recorded first, locked second: a lock never outlives the record that frees it.
            self.backend.lock_coins(signed.inputs)
        except BackendError:
            pass  # the node is gone: the send below fails too, and a later run locks again
        faults.point("broadcast.after_sign_commit")
        return self.send_signed(broadcast, deadline)

    def send_signed(self, broadcast: Broadcast, deadline: float) -> Result:
        """Hand a committed signed transaction to the node, and settle by its answer."""
        try:
            txid = self.backend.send_raw(broadcast.raw_tx, broadcast.txid, deadline=deadline)
        except Conflict as exc:
            return self.stuck(broadcast, exc)
        except Refused as exc:
            # The node will never take these bytes: nothing was sent, the coins are free again.
            result = self.not_sent(broadcast, exc, refusal="dust" in str(exc))
            self._unlock(broadcast.inputs)
            return result
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
                OutgoingTransaction.objects.filter(broadcast=broadcast).update(
                    state=OutgoingTransaction.State.NEEDS_ATTENTION,
                    broadcast=None,
                    returned_by=broadcast,
                    last_error=note,
                )
            faults.point("broadcast.before_fee_cap_commit")
        log.error("broadcast #%s not sent: %s", broadcast.pk, note)
        return self.refused(broadcast, f"NOT SENT, its outgoing need attention: {note}")

    def refused(self, broadcast: Broadcast, what: str) -> Result:
        """The run's answer when `broadcast` did not go as planned: `what` says how, for a
        person, after the wallet and the broadcast's number."""
        return Result(
            refused=True,
            broadcasts=[broadcast.pk],
            message=f"{self.wallet.name}: broadcast #{broadcast.pk} {what}",
        )

    def _unlock(self, inputs):
        if inputs:
            try:
                self.backend.lock_coins(inputs, lock=False)
            except BackendError as exc:
                log.warning(
                    "cannot unlock %s coins now (a node restart frees them): %s", len(inputs), exc
                )

    def recover_signed(self) -> Recovered:
        """This wallet's opened broadcasts that were signed first, settled by the machine
        before anything new is collected: a signed one the node knows (wallet, mempool or
        chain) is booked; one it does not is sent again, the same bytes, after locking its
        coins again (a node restart drops locks); inputs spent elsewhere leave it for a
        person. One that never recorded a signed transaction and whose lease is over never
        sent anything: its outgoing go back to the queue."""
        out = Recovered()
        if not getattr(self.backend, "signs_first", False):
            return out
        rows = Broadcast.objects.filter(
            wallet=self.wallet, state=Broadcast.State.OPENED, signed_first=True, stuck_reason=""
        ).order_by("id")
        for broadcast in rows:
            now = timezone.now()
            if not broadcast.raw_tx:
                if broadcast.sending_until is None or broadcast.sending_until <= now:
                    try:
                        fail_broadcast(
                            broadcast,
                            "no signed transaction was recorded before its lease ended: "
                            "nothing was sent",
                        )
                    except CloseError:
                        continue
                    out.notes.append(
                        f"{self.wallet.name}: broadcast #{broadcast.pk} was never signed: "
                        "its outgoing are back in the queue"
                    )
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
            if confirmations is not None and confirmations >= 0:
                result = self.settle_reply(broadcast, broadcast.txid)
            elif confirmations is not None:
                result = self.stuck(
                    broadcast,
                    Conflict(
                        f"the node's wallet has it conflicted ({confirmations} confirmations)"
                    ),
                )
            else:
                sending_until, deadline = _lease_from(now)
                # The re-send holds the lease like the first send: no close by hand meanwhile.
                if not Broadcast.objects.filter(
                    pk=broadcast.pk, state=Broadcast.State.OPENED
                ).update(sending_until=sending_until):
                    continue
                try:
                    self.backend.lock_coins(broadcast.inputs)
                except BackendError:
                    pass  # spent or unknown coins: the send below says which
                faults.point("broadcast.before_resend")
                result = self.send_signed(broadcast, deadline)
            out.sent += result.sent
            out.fee += result.fee
            out.notes.append(result.message)
        return out

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
        budget = [min(64, 2 * len(ids).bit_length() + 2)]
        total = Result(broadcasts=list(first.broadcasts))
        notes, unfunded, stopped = [], [], []

        def send_ids(group):
            broadcast = self.collect(group)
            if broadcast is None:
                return None
            faults.point("broadcast.isolation_after_collect")
            result = self.send(broadcast)
            total.broadcasts += result.broadcasts
            total.sent += result.sent
            total.fee += result.fee
            return result

        def search(group, exc):
            if stopped:
                return
            if len(group) == 1:
                outcome = self._refused_alone(group[0], exc)
                if outcome is None:
                    unfunded.append(group[0])
                else:
                    notes.append(outcome)
                return
            mid = len(group) // 2
            for half in (group[:mid], group[mid:]):
                if stopped:
                    return
                if budget[0] <= 0:
                    stopped.append(
                        "isolation stopped after its sends for this run; the rest wait for the next"
                    )
                    return
                budget[0] -= 1
                result = send_ids(half)
                if result is None:
                    stopped.append("nothing left to collect")
                elif result.refusal is not None:
                    search(half, result.refusal)
                elif not result.sent:
                    stopped.append(result.message)  # outcome unknown, node down, claimed elsewhere
                    total.refused = total.refused or result.refused

        search(ids, first.refusal)
        parts = [
            f"{self.wallet.name}: broadcast #{refused.pk} refused ({first.refusal}); "
            f"{total.sent} broadcast(s) sent without the refused outputs"
        ]
        parts += [n for n in notes if n]
        if unfunded:
            parts.append(
                f"the wallet's balance cannot cover {len(unfunded)} outgoing "
                f"({', '.join(f'#{i}' for i in unfunded)}): they wait, oldest first, until it can"
            )
        parts += stopped
        total.message = "; ".join(parts)
        return total

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
            # Conditional on still queued: a person may have cancelled it meanwhile.
            OutgoingTransaction.objects.filter(
                pk=outgoing_id, state=OutgoingTransaction.State.QUEUED
            ).update(refusals=F("refusals") + 1, last_error=str(exc)[:4000])
            moved = OutgoingTransaction.objects.filter(
                pk=outgoing_id,
                state=OutgoingTransaction.State.QUEUED,
                refusals__gte=OutgoingTransaction.MAX_REFUSALS,
            ).update(state=OutgoingTransaction.State.NEEDS_ATTENTION)
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

    def settle_reply(self, broadcast: Broadcast, txid: str, **close_fields) -> Result:
        """The node's txid for an opened broadcast: booked once, or, if someone closed it by
        hand meanwhile, recorded and flagged (never re-queued, never booked twice)."""
        # The txid first, alone, while it is ours: if booking fails below, operators still find it.
        Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(txid=txid)
        try:
            settle_broadcasted(broadcast, txid, **close_fields)
        except CloseError:
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

    def watch_never_left(self) -> int:
        """Broadcasts closed as 'never left' in the last day whose comment has since appeared
        on a wallet send (the node finished a send its caller had given up on): handled as a
        late reply, before this run collects the outgoing that close put back in the queue.
        One node call, and only while such broadcasts exist."""
        if not getattr(self.backend, "keeps_comments", True) or not hasattr(
            self.backend, "list_transactions"
        ):
            return 0
        found_signed = self.watch_signed_never_left()
        watched = dict(
            Broadcast.objects.filter(
                wallet=self.wallet,
                state=Broadcast.State.CLOSED_FAILED,
                txid="",
                closed_at__gte=timezone.now() - timedelta(days=1),
            ).values_list("label", "id")
        )
        if not watched:
            return 0
        try:
            entries = self.backend.list_transactions(1000)
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

    def watch_signed_never_left(self) -> int:
        """Signed broadcasts closed as 'never left' in the last day whose stored txid the node
        knows after all (it had the bytes; a conflict went away): a late reply, as above."""
        if not getattr(self.backend, "signs_first", False):
            return 0
        watched = Broadcast.objects.filter(
            wallet=self.wallet,
            state=Broadcast.State.CLOSED_FAILED,
            signed_first=True,
            closed_at__gte=timezone.now() - timedelta(days=1),
        ).exclude(raw_tx="")
        # Once found, the note stays in its last error: never flagged twice for the same news.
        watched = watched.exclude(last_error__contains="LATE REPLY")
        found = 0
        for broadcast_id, txid in watched.values_list("id", "txid"):
            try:
                confirmations = self.backend.known_transaction(txid)
            except BackendError as exc:
                log.warning(
                    "cannot check broadcast #%s closed as never left: %s", broadcast_id, exc
                )
                continue
            if confirmations is not None and confirmations >= 0:
                record_late_reply(broadcast_id, txid)
                found += 1
        return found

    def settle_by_nonce(self) -> int:
        """Interrupted broadcasts of a nonce backend, re-issued with their nonce while that is
        safe: the repeat pays if the first request never did, and is refused if it did."""
        if not getattr(self.backend, "supports_nonce", False):
            return 0
        settled = 0
        # Not interrupted_broadcasts(): this run holds the wallet's lock, so it counts as busy.
        for broadcast in Broadcast.objects.filter(
            Broadcast.lease_over(timezone.now()), wallet=self.wallet, state=Broadcast.State.OPENED
        ).exclude(nonce=""):
            if not nonce_retry_allowed(broadcast):
                continue
            try:
                retry_same_nonce(broadcast, backend=self.backend)
            except CloseError as exc:
                log.warning("broadcast #%s not settled by nonce: %s", broadcast.pk, exc)
                continue
            settled += 1
        return settled

    def record_fee(self, broadcast_id: int, txid: str) -> int | None:
        try:
            info = self.backend.get_transaction(txid)
        except BackendError as exc:
            log.warning("fee of %s not known yet: %s", txid, exc)
            return None
        if info.fee is None:
            return None
        return book_fee(broadcast_id, info.fee)

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
        if not getattr(self.backend, "keeps_comments", True):
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


def _book_sent(broadcast: Broadcast, txid: str, now):
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
    OutgoingTransaction.objects.filter(
        broadcast=broadcast, state=OutgoingTransaction.State.BROADCASTING
    ).update(state=OutgoingTransaction.State.BROADCASTED)


def _opened(broadcast: Broadcast, by_hand: bool, now):
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
        updated = _opened(broadcast, by_hand, now).update(
            state=state, txid=txid, broadcasted_at=now, **close_fields
        )
        if not updated:
            raise CloseError(
                f"broadcast #{broadcast.pk} is no longer opened, or its send is still in flight"
            )
        _book_sent(broadcast, txid, now)
        faults.point("broadcast.before_settle_commit")
    broadcast.refresh_from_db()
    return broadcast


def fail_broadcast(
    broadcast: Broadcast, error: str, *, state=Broadcast.State.FAILED, by_hand=False, **close_fields
):
    """Nothing left the wallet: close the broadcast and put its outgoing back in the queue.

    The withdrawals stay locked on 204 and go out with the next broadcast; a user's money is
    never returned behind the operator's back because a node was down for a minute."""
    now = timezone.now()
    close_fields.setdefault("closed_at", now)
    with transaction.atomic():
        updated = _opened(broadcast, by_hand, now).update(
            state=state, last_error=error[:4000], **close_fields
        )
        if not updated:
            raise CloseError(
                f"broadcast #{broadcast.pk} is no longer opened, or its send is still in flight"
            )
        OutgoingTransaction.objects.filter(broadcast=broadcast).update(
            state=OutgoingTransaction.State.QUEUED,
            broadcast=None,
            returned_by=broadcast,
            attempts=F("attempts") + 1,
        )
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
    """A send's txid arrived after its broadcast was closed by hand. Nothing is re-queued or
    booked twice: the txid is recorded, the outgoing that a 'never left' close put back in
    the queue and that are still waiting are taken back and booked as sent by this txid, and
    the broadcast is flagged for a person with what happened. Returns that note."""
    now = timezone.now()
    with transaction.atomic():
        broadcast = (
            Broadcast.objects.select_for_update().select_related("wallet").get(pk=broadcast_id)
        )
        who = (
            f"by {broadcast.closed_by} " if broadcast.closed_by_id else ""
        )  # not joined: FOR UPDATE
        if broadcast.state in (Broadcast.State.BROADCASTED, Broadcast.State.CLOSED_BROADCASTED):
            if broadcast.txid == txid:
                return f"already settled as {txid}"
            note = (
                f"LATE REPLY: the node paid this broadcast's outputs as {txid}, but it was settled "
                f"{who}as {broadcast.txid}: if both transactions confirm, the outputs were paid "
                "twice"
            )
        elif broadcast.state in (Broadcast.State.CLOSED_FAILED, Broadcast.State.FAILED):
            if Broadcast.objects.filter(txid=txid).exclude(pk=broadcast.pk).exists():
                note = (
                    f"LATE REPLY: the node paid it as {txid}, which already settles another "
                    "broadcast"
                )
                taken = 0
            else:
                # Taken back only while still queued: a conditional UPDATE on the queued state (on
                # PostgreSQL it waits for a collector holding the rows, then skips what it took).
                taken = OutgoingTransaction.objects.filter(
                    returned_by=broadcast,
                    state=OutgoingTransaction.State.QUEUED,
                ).update(state=OutgoingTransaction.State.BROADCASTING, broadcast=broadcast)
                # Closed as never left, yet it paid: booked as sent by the machine, the wrong
                # close kept on the row (who, how, why) for the person who looks at it.
                Broadcast.objects.filter(pk=broadcast.pk).update(
                    txid=txid,
                    **(
                        {"state": Broadcast.State.BROADCASTED, "broadcasted_at": now}
                        if taken
                        else {}
                    ),
                )
                if taken:
                    signed_txid = broadcast.txid
                    broadcast.refresh_from_db()
                    _book_sent(broadcast, txid, now)
                    if broadcast.signed_fee is not None and signed_txid == txid:
                        # Its own signed bytes: the fee is known, booked with the send (else
                        # the books would hold the fee until the next run's missing-fee fill).
                        book_fee(broadcast.pk, broadcast.signed_fee)
                note = (
                    f"LATE REPLY: closed {who}as never left, but the node paid it as {txid}. "
                    f"{taken} outgoing still queued were taken back and booked as sent by it."
                )
            resent = list(
                OutgoingTransaction.objects.filter(returned_by=broadcast, broadcast__isnull=False)
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
                    returned_by=broadcast, state__in=OutgoingTransaction.RETURNED_STATES
                ).values_list("id", flat=True)
            )
            if given_back:
                note += (
                    " PAID AND GIVEN BACK: outgoing "
                    + ", ".join(f"#{o}" for o in given_back)
                    + " were returned to the user's 201 after this broadcast failed, yet it paid "
                    "them: the user has them twice; recover by hand."
                )
        else:
            note = f"LATE REPLY: txid {txid} for a broadcast in state {broadcast.state}"
        Broadcast.objects.filter(pk=broadcast.pk).update(
            needs_attention=True,
            last_error=(f"{note}\n{broadcast.last_error}" if broadcast.last_error else note)[:4000],
        )
        faults.point("broadcast.before_late_reply_commit")
    log.error("broadcast #%s: %s", broadcast_id, note)
    return note


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


# -- closing by hand -------------------------------------------------------------------------


def _check_closable(broadcast: Broadcast, user, reason: str):
    actors.require(user, CLOSE_PERM)
    if actors.person(user) is None:
        raise CloseError(
            "a close by hand names the person who checked: the system cannot close one"
        )
    if not (reason or "").strip():
        raise CloseError("give a reason")
    broadcast.refresh_from_db()
    if broadcast.state != Broadcast.State.OPENED:
        raise CloseError(
            f"broadcast #{broadcast.pk} is {broadcast.get_state_display()}, not interrupted"
        )
    if broadcast.in_flight:
        raise CloseError(
            f"broadcast #{broadcast.pk} is still sending (its lease runs until "
            f"{timezone.localtime(broadcast.sending_until):%H:%M:%S}): wait for the node's answer"
        )


def find_on_chain(broadcast: Broadcast, backend=None) -> list[str]:
    """The broadcast's stored txid if the node knows it (wallet, mempool or chain; not
    conflicted); else the txids of the node wallet's transactions carrying its comment, or,
    where the backend keeps no comments, its sends since it opened paying its outputs."""
    backend = backend or broadcast.wallet.get_backend()
    if broadcast.txid and getattr(backend, "signs_first", False):
        confirmations = backend.known_transaction(broadcast.txid)
        if confirmations is not None and confirmations >= 0:
            return [broadcast.txid]
    if getattr(backend, "keeps_comments", True):
        return backend.find_by_comment(broadcast.label)
    return backend.find_sent({a: int(v) for a, v in broadcast.outputs.items()}, broadcast.opened_at)


def _verify_paid_by(broadcast: Broadcast, txid: str, backend):
    """The txid is a transaction of this wallet paying exactly the broadcast's outputs."""
    try:
        info = backend.get_transaction(txid)
    except BackendError as exc:
        raise CloseError(f"the node does not confirm this transaction: {exc}") from exc
    sent = info.sent()
    expected = {a: int(v) for a, v in broadcast.outputs.items()}
    if sent != expected:
        missing = {a: v for a, v in expected.items() if sent.get(a) != v}
        extra = {a: v for a, v in sent.items() if expected.get(a) != v}
        raise CloseError(
            f"the outputs of {txid} do not match the broadcast: expected but not paid "
            f"{missing or '{}'}, paid but not expected {extra or '{}'}"
        )
    try:
        ours = backend.spends_own_coins(txid)
    except BackendError as exc:
        raise CloseError(f"cannot check the inputs of {txid}: {exc}") from exc
    if not ours:
        raise CloseError(
            f"{txid} pays these outputs but does not spend this wallet's coins: someone else's "
            "payment"
        )
    if info.confirmations < 0:
        raise CloseError(
            f"{txid} is conflicted ({info.confirmations} confirmations): it did not reach the "
            "network"
        )
    if Broadcast.objects.filter(txid=txid).exclude(pk=broadcast.pk).exists():
        raise CloseError(f"{txid} already settles another broadcast")
    return info


def close_as_broadcasted(
    broadcast: Broadcast, txid: str, user, reason: str, backend=None
) -> Broadcast:
    """'It reached the network': the txid must be a wallet transaction spending this wallet's
    coins and sending exactly the broadcast's outputs. Booked as a normal success, with
    who/how/why."""
    _check_closable(broadcast, user, reason)
    txid = parse_txid(txid)
    if txid is None:
        raise CloseError("a txid is 64 hexadecimal characters")
    backend = backend or broadcast.wallet.get_backend()
    with wallet_lock(broadcast.wallet_id) as got:
        if not got:
            raise CloseError(
                "a broadcaster is working on this wallet right now; try again in a moment"
            )
        info = _verify_paid_by(broadcast, txid, backend)
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


def nonce_retry_allowed(broadcast: Broadcast, now=None) -> bool:
    """Within block.io's window a repeated nonce is refused, so repeating cannot pay twice."""
    now = now or timezone.now()
    return bool(
        broadcast.nonce
        and broadcast.opened_at
        and now < broadcast.opened_at + timedelta(seconds=settings.BLOCKIO_NONCE_WINDOW)
    )


def close_as_never_left(broadcast: Broadcast, user, reason: str, backend=None) -> Broadcast:
    """'It never left': only when the node's wallet has no transaction with its comment (on a
    backend without comments: no send paying its outputs since it opened, and only once a
    retry with its nonce can no longer tell, since that retry is the safe way)."""
    _check_closable(broadcast, user, reason)
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
            Broadcaster(broadcast.wallet, backend)._unlock(broadcast.inputs)
    broadcast.refresh_from_db()
    return broadcast


def retry_same_nonce(broadcast: Broadcast, user=None, reason: str = "", backend=None) -> Broadcast:
    """Re-issue an interrupted send with its nonce (block.io): within the nonce window the
    backend refuses a repeat of a send that went through, so this pays at most once.
    A txid settles it; a repeat refusal means the first went through, and it is settled by the
    send found paying its outputs, or left for 'It reached the network'. By a person (user)
    or by the broadcaster (user None)."""
    if user is not None:
        _check_closable(broadcast, user, reason)
    broadcast.refresh_from_db()
    backend = backend or broadcast.wallet.get_backend()
    if not getattr(backend, "supports_nonce", False) or not broadcast.nonce:
        raise CloseError("this wallet's backend has no nonce to repeat a send safely")
    if not nonce_retry_allowed(broadcast):
        raise CloseError(
            f"opened more than {settings.BLOCKIO_NONCE_WINDOW} s ago: the backend could accept the "
            "same nonce again and pay twice; check its sent transactions and close by hand"
        )
    now = timezone.now()
    sending_until, deadline = _lease_from(now)
    with wallet_lock(broadcast.wallet_id) as got:
        if not got and user is not None:
            raise CloseError(
                "a broadcaster is working on this wallet right now; try again in a moment"
            )
        # The retry is a send in flight like the first: it takes the lease, if it is over.
        claimed = _opened(broadcast, True, now).update(sending_until=sending_until)
        if not claimed:
            raise CloseError(
                f"broadcast #{broadcast.pk} is no longer opened, or its send is still in flight"
            )
        faults.point("broadcast.after_retry_claim")
        close_fields = (
            {}
            if user is None
            else dict(
                state=Broadcast.State.CLOSED_BROADCASTED,
                closed_by=actors.person(user),
                close_method=Broadcast.CloseMethod.SAME_NONCE,
                close_reason=reason.strip(),
            )
        )
        try:
            txid = backend.send_many(
                broadcast.outputs, broadcast.label, nonce=broadcast.nonce, deadline=deadline
            )
        except AlreadySent as exc:
            _end_lease(broadcast, f"retry with the same nonce: {exc}")
            return _settle_found(broadcast, backend, close_fields, exc)
        except (NotSent, InsufficientFunds, InvalidAddress) as exc:
            _end_lease(broadcast, f"retry with the same nonce refused: {exc}")
            raise CloseError(
                f"the retry was refused and sent nothing ({exc}); the first request's outcome is "
                "still unknown"
            ) from exc
        except Exception as exc:
            Broadcast.objects.filter(pk=broadcast.pk).update(
                last_error=f"retry: {type(exc).__name__}: {exc}"[:4000]
            )
            raise CloseError(
                f"the retry's outcome is unknown too ({exc}); try again once its lease is over"
            ) from exc
        faults.point("broadcast.after_retry_send")
        Broadcaster(broadcast.wallet, backend).settle_reply(broadcast, txid, **close_fields)
    broadcast.refresh_from_db()
    return broadcast


def may_close(user) -> bool:
    """Whether to offer the close-by-hand pages and buttons; the services check again."""
    return actors.allowed(user, CLOSE_PERM)


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


def _end_lease(broadcast: Broadcast, error: str):
    Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(
        sending_until=timezone.now(), last_error=error[:4000]
    )


def _settle_found(broadcast: Broadcast, backend, close_fields: dict, exc) -> Broadcast:
    """The first request went through: settle by the one wallet send paying the outputs."""
    try:
        found = find_on_chain(broadcast, backend)
    except BackendError as error:
        raise CloseError(
            f"{exc}: it left, but its transaction cannot be listed now ({error})"
        ) from error
    if len(found) != 1:
        raise CloseError(
            f"{exc}: it left; {len(found)} matching sends found, close it as 'It reached the "
            "network' with the txid from the backend's dashboard"
        )
    _verify_paid_by(broadcast, found[0], backend)
    now = timezone.now()
    with transaction.atomic():
        updated = _opened(broadcast, True, now).update(
            state=close_fields.get("state", Broadcast.State.BROADCASTED),
            txid=found[0],
            broadcasted_at=now,
            closed_at=now,
            **{k: v for k, v in close_fields.items() if k != "state"},
        )
        if not updated:
            raise CloseError(f"broadcast #{broadcast.pk} is no longer opened")
        _book_sent(broadcast, found[0], now)
    Broadcaster(broadcast.wallet, backend).record_fee(broadcast.pk, found[0])
    broadcast.refresh_from_db()
    return broadcast


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
