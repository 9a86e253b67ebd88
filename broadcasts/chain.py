"""What the node says about a broadcast: where it is on chain, and whether a txid is really
its payment."""

from cryptoadmin.errors import CloseRefused
from ledger.backends import BackendError

from .models import Broadcast


def find_on_chain(broadcast: Broadcast, backend=None) -> list[str]:
    """The broadcast's stored txid if the node knows it (wallet, mempool or chain; not
    conflicted); else the txids of the node wallet's transactions carrying its comment, or,
    where the backend keeps no comments, its sends since it opened paying its outputs."""
    backend = backend or broadcast.wallet.get_backend()
    if broadcast.txid and backend.signs_first:
        confirmations = backend.known_transaction(broadcast.txid)
        if confirmations is not None and confirmations >= 0:
            return [broadcast.txid]
    if backend.keeps_comments:
        return backend.find_by_comment(broadcast.label)
    return backend.find_sent({a: int(v) for a, v in broadcast.outputs.items()}, broadcast.opened_at)


def paying_any(broadcast: Broadcast, backend) -> list[str]:
    """Where the backend keeps no comments: the wallet's sends since the broadcast opened that
    pay any one of its outputs (all of them listed, or BackendError)."""
    outputs = {a: int(v) for a, v in broadcast.outputs.items()}
    return backend.find_sent(outputs, broadcast.opened_at, any_output=True)


def verify_paid_by(broadcast: Broadcast, txid: str, backend):
    """The txid is a transaction of this wallet paying exactly the broadcast's outputs (an
    output to one of our own addresses is paid like any other; anything more goes only to our
    own addresses: the change)."""
    try:
        info = backend.get_transaction(txid)
    except BackendError as exc:
        raise CloseRefused(f"the node does not confirm this transaction: {exc}") from exc
    try:
        ours = backend.spends_own_coins(txid)
    except BackendError as exc:
        raise CloseRefused(f"cannot check the inputs of {txid}: {exc}") from exc
    own = info.received()
    paid = dict(info.sent())
    if ours:  # our own send: what it pays our own addresses is paid too
        for address, units in own.items():
            paid.setdefault(address, units)
    expected = {a: int(v) for a, v in broadcast.outputs.items()}
    missing = {a: v for a, v in expected.items() if paid.get(a) != v}
    extra = {a: v for a, v in paid.items() if a not in expected and a not in own}
    if missing or extra:
        raise CloseRefused(
            f"the outputs of {txid} do not match the broadcast: expected but not paid "
            f"{missing or '{}'}, paid but not expected {extra or '{}'}"
        )
    if not ours:
        raise CloseRefused(
            f"{txid} pays these outputs but does not spend this wallet's coins: someone else's "
            "payment"
        )
    if info.confirmations < 0:
        raise CloseRefused(
            f"{txid} is conflicted ({info.confirmations} confirmations): it did not reach the "
            "network"
        )
    if Broadcast.objects.filter(txid=txid).exclude(pk=broadcast.pk).exists():
        raise CloseRefused(f"{txid} already settles another broadcast")
    return info


def coins_left_by(broadcast: Broadcast, txid: str, backend) -> list[str]:
    """A signed broadcast settled by another transaction than its own: that one must spend one
    of its coins (else the signed one could still confirm and pay the outputs again). Returns
    its coins, to unlock: those the other transaction leaves are free again (a lock outlives
    the spend of its coin, so the spent ones too)."""
    if not broadcast.raw_tx:
        return []
    from ledger import rawtx

    if txid == rawtx.txid(bytes.fromhex(broadcast.raw_tx)):
        return []
    try:
        spent = backend.transaction_coins(txid)
    except BackendError as exc:
        raise CloseRefused(f"cannot read the coins {txid} spends: {exc}") from exc
    if not spent & set(broadcast.inputs):
        raise CloseRefused(
            f"{txid} spends none of the coins of this broadcast's signed transaction, which "
            "could then still confirm and pay these outputs again"
        )
    return sorted(broadcast.inputs)
