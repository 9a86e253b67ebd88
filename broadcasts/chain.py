"""What the node says about a broadcast: where it is on chain, and whether a txid is really
its payment."""

from ledger.backends import BackendError

from .errors import CloseError
from .models import Broadcast


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


def verify_paid_by(broadcast: Broadcast, txid: str, backend):
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
