"""Outgoing transactions and the Broadcaster.

One attempt per broadcast, whatever number of processes run:
- a per-wallet PostgreSQL session advisory lock (`wallet_lock`) lets one broadcaster work on
  a wallet at a time; it is held by the database for the connection, so it spans machines
  and a killed process loses it at once;
- the database itself allows only one collected-or-opened broadcast per wallet (partial
  unique index) and a broadcast is opened by a conditional UPDATE (collected -> opened), so
  even without the lock (SQLite) no broadcast can be sent twice.
The node is never called inside a database transaction.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from cryptoadmin import faults
from ledger import services as ledger
from ledger.backends import BackendError, InsufficientFunds, InvalidAddress, NotSent
from ledger.errors import CryptoadminError
from ledger.models import Account, NetworkTransaction, Transaction, Wallet
from ledger.txids import parse_txid

from .models import Broadcast, OutgoingTransaction

log = logging.getLogger(__name__)

# First key of the two-int advisory lock; the second is the wallet id.
LOCK_CLASS = 0x4341_4231  # "CAB1"


class OutgoingError(CryptoadminError, ValueError):
    """A withdrawal that cannot be queued; nothing was written."""


class CloseError(CryptoadminError, ValueError):
    """A close by hand refused; nothing was written. The message says why."""


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
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objsubid = 2 AND granted",
            [LOCK_CLASS],
        )
        return {row[0] for row in cursor.fetchall()}


def interrupted_broadcasts():
    """Opened, never closed, and no live broadcaster is working on them."""
    return Broadcast.objects.filter(state=Broadcast.State.OPENED).exclude(wallet_id__in=busy_wallet_ids())


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


def check_external(account: Account, address: str, amount: int, wallet: Wallet | None = None) -> Wallet:
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
        raise OutgoingError(f"{address!r} is not a valid {currency.code} address on {currency.network}")
    return wallet


def send_external(account: Account, address: str, amount: int, *, wallet: Wallet | None = None,
                  created_by=None, label: str = "") -> OutgoingTransaction:
    """Queue a withdrawal: 201 -> 204 and a queued OutgoingTransaction, in one transaction."""
    wallet = check_external(account, address, amount, wallet)  # node call: before any lock
    address = address.strip()
    hold = ledger.user_account(account.user_id, account.currency, Account.Code.WITHDRAW_LOCKED)
    with transaction.atomic():
        # Serialises withdrawals of one user so two cannot both spend the same balance.
        Account.objects.select_for_update().get(pk=account.pk)
        available = ledger.balance(account)
        if available < amount:
            raise OutgoingError(
                f"too little balance: {account.currency.format(available)} available, "
                f"{account.currency.format(amount)} requested"
            )
        entry = ledger.post(account, hold, amount, Transaction.Kind.PENDING_OUTGOING,
                            label=label or f"withdrawal to {address}", created_by=created_by)
        return OutgoingTransaction.objects.create(
            wallet=wallet, currency_id=account.currency_id, account=account, hold_account=hold, address=address,
            amount=amount, lock_entry=entry, label=label, created_by=created_by,
        )


# -- the broadcaster -------------------------------------------------------------------------


@dataclass
class Result:
    sent: int = 0
    fee: int = 0
    message: str = ""
    refused: bool = False
    broadcasts: list = field(default_factory=list)

    def __iter__(self):  # (broadcasts sent, total fee), as the reference design returned
        return iter((self.sent, self.fee))


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
            interrupted = list(Broadcast.objects.filter(wallet=self.wallet, state=Broadcast.State.OPENED)
                               .values_list("id", flat=True))
            if interrupted:
                return Result(refused=True, message=(
                    f"{self.wallet.name}: refusing to broadcast: interrupted broadcast(s) "
                    f"{', '.join(f'#{i}' for i in interrupted)} must be closed by hand first"))
            try:
                # A cheap read first: when the node is down nothing is collected or marked.
                self.backend.block_height()
            except BackendError as exc:
                return Result(fee=filled, message=f"{self.wallet.name}: node not answering, nothing collected: {exc}")
            broadcast = self.collect()
            if broadcast is None:
                return Result(fee=filled, message=f"{self.wallet.name}: nothing to send")
            result = self.send(broadcast)
            result.fee += filled
            return result

    def collect(self) -> Broadcast | None:
        """A collected broadcast of this wallet: one left by a crash before opening, or a new one."""
        with transaction.atomic():
            leftover = Broadcast.objects.filter(wallet=self.wallet, state=Broadcast.State.COLLECTED).first()
            if leftover is not None:
                return leftover
            rows = list(
                OutgoingTransaction.objects.select_for_update(skip_locked=True)
                .filter(wallet=self.wallet, state=OutgoingTransaction.State.QUEUED)
                .values_list("id", "address", "amount")
            )
            if not rows:
                return None
            outputs: dict[str, int] = {}
            for _, address, amount in rows:
                outputs[address] = outputs.get(address, 0) + amount
            broadcast = Broadcast.objects.create(
                wallet=self.wallet, outputs=outputs, output_count=len(outputs), transaction_count=len(rows),
                total=sum(outputs.values()),
            )
            broadcast.label = f"cryptoadmin-broadcast-{broadcast.pk}"
            Broadcast.objects.filter(pk=broadcast.pk).update(label=broadcast.label)
            OutgoingTransaction.objects.filter(id__in=[r[0] for r in rows]).update(
                state=OutgoingTransaction.State.BROADCASTING, broadcast=broadcast)
            return broadcast

    def send(self, broadcast: Broadcast) -> Result:
        now = timezone.now()
        # The claim, committed on its own before the node is called: from here on a crash
        # leaves an opened broadcast that nobody sends again without a human.
        claimed = Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.COLLECTED).update(
            state=Broadcast.State.OPENED, opened_at=now)
        if not claimed:
            return Result(message=f"{self.wallet.name}: broadcast #{broadcast.pk} was claimed by another process")
        faults.point("broadcast.after_open")
        try:
            txid = self.backend.send_many(broadcast.outputs, broadcast.label)
        except (NotSent, InsufficientFunds, InvalidAddress) as exc:
            # The node's answer proves nothing was sent: the outgoing go back to the queue.
            fail_broadcast(broadcast, str(exc))
            return Result(message=f"{self.wallet.name}: broadcast #{broadcast.pk} not sent: {exc}",
                          broadcasts=[broadcast.pk])
        except Exception as exc:
            # Outcome unknown: leave it opened (interrupted) for an operator to settle.
            Broadcast.objects.filter(pk=broadcast.pk).update(last_error=f"{type(exc).__name__}: {exc}"[:4000])
            log.error("broadcast #%s interrupted: %r", broadcast.pk, exc)
            return Result(refused=True, broadcasts=[broadcast.pk], message=(
                f"{self.wallet.name}: broadcast #{broadcast.pk} INTERRUPTED (outcome unknown: {exc}); "
                "close it by hand after checking the chain"))
        faults.point("broadcast.after_send")
        # The txid first, alone: if booking fails below, the operator still finds it here.
        Broadcast.objects.filter(pk=broadcast.pk).update(txid=txid)
        settle_broadcasted(broadcast, txid)
        fee = self.record_fee(broadcast.pk, txid)
        fee_text = self.wallet.currency.format(fee) if fee is not None else "unknown yet"
        return Result(sent=1, fee=fee or 0, broadcasts=[broadcast.pk], message=(
            f"{self.wallet.name}: broadcast #{broadcast.pk} sent {broadcast.transaction_count} outgoing in "
            f"{broadcast.output_count} outputs, txid {txid}, fee {fee_text}"))

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
        missing = dict(Broadcast.objects.filter(
            wallet=self.wallet, fee__isnull=True,
            state__in=[Broadcast.State.BROADCASTED, Broadcast.State.CLOSED_BROADCASTED],
        ).values_list("txid", "id"))
        if not missing:
            return 0
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
        broadcast = Broadcast.objects.select_for_update().select_related("wallet").get(pk=broadcast_id)
        if broadcast.fee is not None:
            return None
        broadcast.fee = fee
        broadcast.save(update_fields=["fee"])
        if fee > 0:
            accounts = ledger.system_accounts(broadcast.wallet)
            ledger.post(accounts[Account.Code.FEES], accounts[Account.Code.NETWORK], fee, Transaction.Kind.FEE,
                        network_transaction_id=broadcast.network_transaction_id, label=broadcast.label)
        return fee


def settle_broadcasted(broadcast: Broadcast, txid: str, *, state=Broadcast.State.BROADCASTED, **close_fields):
    """Book a broadcast that left the wallet: 204 -> 900 per user account, and a network
    transaction for the confirmation poller. A constant number of queries for any size."""
    wallet = broadcast.wallet
    now = timezone.now()
    close_fields.setdefault("closed_at", now)
    with transaction.atomic():
        updated = Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(
            state=state, txid=txid, broadcasted_at=now, **close_fields)
        if not updated:
            raise CloseError(f"broadcast #{broadcast.pk} is no longer opened")
        network_tx, _ = NetworkTransaction.objects.get_or_create(
            currency_id=wallet.currency_id, txid=txid, type=NetworkTransaction.Type.BROADCAST,
            defaults={"wallet": wallet},
        )
        Broadcast.objects.filter(pk=broadcast.pk).update(network_transaction=network_tx)
        network = ledger.system_account(wallet, Account.Code.NETWORK)
        # One entry per user's 204 account (the sum of that user's outgoing in this broadcast):
        # the outgoing rows link each withdrawal to the broadcast, the books stay compact.
        per_account = (OutgoingTransaction.objects.filter(broadcast=broadcast)
                       .values("hold_account_id").annotate(total=Sum("amount"), n=Count("id")))
        ledger.post_many([
            Transaction(currency_id=wallet.currency_id, source_id=row["hold_account_id"], destination_id=network.pk,
                        amount=row["total"], kind=Transaction.Kind.BROADCASTED, network_transaction=network_tx,
                        label=f"{broadcast.label}: {row['n']} outgoing", created_at=now)
            for row in per_account
        ])
        OutgoingTransaction.objects.filter(broadcast=broadcast).update(state=OutgoingTransaction.State.BROADCASTED)
    broadcast.refresh_from_db()
    return broadcast


def fail_broadcast(broadcast: Broadcast, error: str, *, state=Broadcast.State.FAILED, **close_fields):
    """Nothing left the wallet: close the broadcast and put its outgoing back in the queue.

    The withdrawals stay locked on 204 and go out with the next broadcast; a user's money is
    never returned behind the operator's back because a node was down for a minute."""
    close_fields.setdefault("closed_at", timezone.now())
    with transaction.atomic():
        updated = Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.OPENED).update(
            state=state, last_error=error[:4000], **close_fields)
        if not updated:
            raise CloseError(f"broadcast #{broadcast.pk} is no longer opened")
        OutgoingTransaction.objects.filter(broadcast=broadcast).update(
            state=OutgoingTransaction.State.QUEUED, broadcast=None, attempts=F("attempts") + 1)
    broadcast.refresh_from_db()
    return broadcast


# -- closing by hand -------------------------------------------------------------------------


def _check_closable(broadcast: Broadcast, user, reason: str):
    if not user.has_perm("broadcasts.close_broadcast_by_hand"):
        raise CloseError("you do not have the permission to close broadcasts by hand")
    if not (reason or "").strip():
        raise CloseError("give a reason")
    if broadcast.state != Broadcast.State.OPENED:
        raise CloseError(f"broadcast #{broadcast.pk} is {broadcast.get_state_display()}, not interrupted")


def find_on_chain(broadcast: Broadcast, backend=None) -> list[str]:
    """Txids of the node wallet's transactions carrying this broadcast's comment."""
    backend = backend or broadcast.wallet.get_backend()
    return backend.find_by_comment(broadcast.label)


def close_as_broadcasted(broadcast: Broadcast, txid: str, user, reason: str, backend=None) -> Broadcast:
    """'It reached the network': the txid must be a wallet transaction sending exactly the
    broadcast's outputs. Booked as a normal success, with who/how/why."""
    _check_closable(broadcast, user, reason)
    txid = parse_txid(txid)
    if txid is None:
        raise CloseError("a txid is 64 hexadecimal characters")
    backend = backend or broadcast.wallet.get_backend()
    with wallet_lock(broadcast.wallet_id) as got:
        if not got:
            raise CloseError("a broadcaster is working on this wallet right now; try again in a moment")
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
                f"the outputs of {txid} do not match the broadcast: expected but not paid {missing or '{}'}, "
                f"paid but not expected {extra or '{}'}")
        if info.confirmations < 0:
            raise CloseError(f"{txid} is conflicted ({info.confirmations} confirmations): it did not reach the network")
        if Broadcast.objects.filter(txid=txid).exclude(pk=broadcast.pk).exists():
            raise CloseError(f"{txid} already settles another broadcast")
        with transaction.atomic():
            settle_broadcasted(
                broadcast, txid, state=Broadcast.State.CLOSED_BROADCASTED, closed_at=timezone.now(),
                closed_by=user, close_method=Broadcast.CloseMethod.REACHED_NETWORK, close_reason=reason.strip())
            if info.fee is not None:
                book_fee(broadcast.pk, info.fee)
    broadcast.refresh_from_db()
    return broadcast


def close_as_never_left(broadcast: Broadcast, user, reason: str, backend=None) -> Broadcast:
    """'It never left': only when the node's wallet has no transaction with its comment."""
    _check_closable(broadcast, user, reason)
    backend = backend or broadcast.wallet.get_backend()
    with wallet_lock(broadcast.wallet_id) as got:
        if not got:
            raise CloseError("a broadcaster is working on this wallet right now; try again in a moment")
        try:
            found = backend.find_by_comment(broadcast.label)
        except BackendError as exc:
            raise CloseError(f"cannot search the node's wallet: {exc}") from exc
        if found:
            raise CloseError(f"the node's wallet has {', '.join(found)} with comment {broadcast.label}: "
                             "it left; close it as 'It reached the network'")
        fail_broadcast(broadcast, broadcast.last_error or "closed by hand: never left",
                       state=Broadcast.State.CLOSED_FAILED, closed_by=user,
                       close_method=Broadcast.CloseMethod.NEVER_LEFT, close_reason=reason.strip())
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
