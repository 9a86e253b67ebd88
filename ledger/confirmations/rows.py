"""What the node said about one transaction, recorded on its row in memory (the bulk
writers save it): its state, its block, or that it is missing; flagged when a person must look."""

from ..backends import TransactionNotFound
from ..backends.base import TxInfo
from ..models import Currency, NetworkTransaction

NT = NetworkTransaction


def record_state(row: NetworkTransaction, info: TxInfo, currency: Currency, now) -> None:
    confs = info.confirmations
    row.last_error, row.last_error_at = "", None
    if confs < 0:
        if row.state != NT.State.CONFLICTED:
            row.state, row.state_changed_at = NT.State.CONFLICTED, now
            # Always a person's business: a credited deposit may be money the books no longer
            # hold; an uncredited one is a payment the user will ask about (double spend?).
            credit = "credited" if row.credited_at is not None else "never credited"
            flag(row, f"conflicted at {now:%Y-%m-%d %H:%M} (confirmations {confs}), {credit}")
        row.confirmations = confs
        return
    if row.state in (NT.State.CONFLICTED, NT.State.VANISHED):
        row.state, row.state_changed_at = NT.State.OPEN, now  # it came back
    if (
        confs < row.confirmations
        and row.credited_at is not None
        and confs < currency.crediting_threshold
    ):
        flag(
            row,
            f"credited deposit lost confirmations: {row.max_confirmations} seen, now {confs} "
            "(reorg?)",
        )
    row.confirmations = confs
    row.max_confirmations = max(row.max_confirmations, confs)
    if confs >= currency.polling_threshold and row.state == NT.State.OPEN:
        if row.type == NT.Type.DEPOSIT and row.credited_at is None:
            return  # it closes only in the transaction that credits it (credit_deposit)
        row.state, row.state_changed_at, row.closed_at = NT.State.CLOSED, now, now


def record_block(row: NetworkTransaction, info: TxInfo, tip_height: int | None) -> None:
    """Where the node says it is mined; the height only when derived from a tip read in the
    same round trip (otherwise it stays unplaced and is asked again by txid)."""
    if info.confirmations > 0 and info.blockhash:
        if tip_height is not None:
            row.block_hash, row.block_height = info.blockhash, tip_height - info.confirmations + 1
        elif row.block_hash != info.blockhash:
            row.block_hash, row.block_height = info.blockhash, None  # placed by the next poll
    else:
        row.block_hash, row.block_height = "", None


def record_missing(row: NetworkTransaction, error, now) -> None:
    if isinstance(error, TransactionNotFound) or error is None:
        if row.state != NT.State.VANISHED:
            row.state, row.state_changed_at = NT.State.VANISHED, now
            _flag_if_it_matters(row, f"vanished from the node at {now:%Y-%m-%d %H:%M}")
        row.last_error = str(error) if error else "not in the node's wallet"
    else:
        row.last_error = str(error)[:2000]
    row.last_error_at = now


def _flag_if_it_matters(row, reason):
    # A credited deposit or our own broadcast going away needs a person; an uncredited
    # deposit that vanishes is just recorded (it was never money in the books).
    if row.credited_at is not None or row.type == NT.Type.BROADCAST:
        flag(row, reason)


def flag(row, reason):
    row.flagged = True
    row.flag_reason = (row.flag_reason + "\n" if row.flag_reason else "") + reason
