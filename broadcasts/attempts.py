"""One payment by construction. A withdrawal that was ever part of a signed transaction is
paid again only by a transaction that spends a coin of every earlier signed attempt that might
still confirm: two transactions spending one coin can never both confirm, so the chain, not
this bookkeeping, keeps one payment whatever crashed, timed out, raced or was closed by hand.
An earlier attempt stops counting only once provably dead: one of its coins spent by another
transaction with at least the currency's polling threshold of confirmations (then recorded in
`dead_reason`). An earlier attempt the node holds (mempool or chain) is alive: the withdrawals
are settled as that one, never paid again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction

from ledger import rawtx
from ledger.backends import BackendError

from .models import Broadcast, BroadcastMember
from .settlement import fail_broadcast, record_late_reply

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What the next transaction of a broadcast must be: the coins it must spend; or the
    earlier attempt the node holds (it pays: settle as it); or why none can be built now."""

    coins: list[str] = field(default_factory=list)
    alive: Broadcast | None = None
    waiting: str = ""


def signed_txid(broadcast: Broadcast) -> str:
    """The txid of the transaction a broadcast signed (its `txid` may name another one that
    a person found paying it)."""
    return rawtx.txid(bytes.fromhex(broadcast.raw_tx))


def earlier_attempts(broadcast: Broadcast):
    """Signed broadcasts other than this one that contained one of its withdrawals and are
    not recorded dead, oldest first."""
    withdrawals = BroadcastMember.objects.filter(broadcast=broadcast).values("outgoing_id")
    return (
        Broadcast.objects.filter(members__outgoing_id__in=withdrawals, dead_reason="")
        .exclude(pk=broadcast.pk)
        .exclude(raw_tx="")
        .distinct()
        .order_by("id")
    )


def plan(broadcast: Broadcast, backend, threshold: int) -> Plan:
    """The coins the broadcast's next transaction must spend, read from the node (no write
    but a dead attempt's record). Raises BackendError when the node cannot tell."""
    out = Plan()
    for earlier in earlier_attempts(broadcast):
        txid = signed_txid(earlier)
        confirmations = backend.known_transaction(txid)
        if confirmations is not None and confirmations >= 0:
            return Plan(alive=earlier)
        free = backend.unspent_coins(earlier.inputs)
        spent = [c for c in earlier.inputs if c not in free]
        if spent:
            depth = backend.spender_confirmations(spent, exclude=txid)
            if depth is not None and depth >= threshold:
                mark_dead(earlier, f"a coin it spends is spent by a transaction {depth} deep")
                unlock(backend, sorted(free))
                continue
        if set(earlier.inputs) & set(out.coins):
            continue  # it already conflicts through a coin chosen for another attempt
        if not free:
            out.waiting = (
                f"the coins of its earlier signed attempt #{earlier.pk} ({txid}) are spent by a "
                f"transaction with fewer than {threshold} confirmations: it may still confirm"
            )
            return out
        out.coins.append(sorted(free)[0])
    return out


def alive_earlier(broadcast: Broadcast, backend) -> Broadcast | None:
    """The earlier signed attempt of these withdrawals that the node holds, if any (what a
    conflict with our own re-attempt means)."""
    for earlier in earlier_attempts(broadcast):
        confirmations = backend.known_transaction(signed_txid(earlier))
        if confirmations is not None and confirmations >= 0:
            return earlier
    return None


def settle_as(broadcast: Broadcast, earlier: Broadcast) -> str:
    """An earlier signed attempt pays these withdrawals: this opened broadcast fails, and its
    withdrawals are taken back by the earlier one and booked as sent by it, in one database
    transaction. Raises CloseRefused when this one is no longer opened. Returns the note."""
    txid = signed_txid(earlier)
    with transaction.atomic():
        fail_broadcast(
            broadcast, f"its withdrawals are paid by earlier attempt #{earlier.pk} ({txid})"
        )
        return record_late_reply(earlier.pk, txid)


def mark_dead(broadcast: Broadcast, reason: str) -> None:
    Broadcast.objects.filter(pk=broadcast.pk, dead_reason="").update(dead_reason=reason[:4000])
    log.warning("broadcast #%s can never confirm: %s", broadcast.pk, reason)


def unlock(backend, coins) -> None:
    if coins:
        try:
            backend.lock_coins(coins, lock=False)
        except BackendError as exc:
            log.warning(
                "cannot unlock %s coins now (a node restart frees them): %s", len(coins), exc
            )
