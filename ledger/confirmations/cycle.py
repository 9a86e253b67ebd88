"""One poll cycle of a wallet: the tip, the window of wallet transactions since the last
one, the rows placed, closed, asked and moved, then the wallet's cursor."""

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cryptoadmin import faults

from ..backends import BadReply
from ..backends.base import SinceBlock, TxInfo
from ..models import NetworkTransaction, Wallet
from ..signals import deposits_changed
from .apply import apply
from .bulk import place_in_blocks
from .crediting import record_deposits
from .sql import close_at_threshold, rows_to_ask
from .summary import Summary, counting_statements

log = logging.getLogger(__name__)
NT = NetworkTransaction


def record_poll_error(wallet: Wallet, exc: Exception) -> None:
    Wallet.objects.filter(pk=wallet.pk).update(
        last_poll_error=f"{type(exc).__name__}: {exc}"[:2000], last_poll_error_at=timezone.now()
    )


def poll_wallet(wallet: Wallet, backend=None) -> Summary:
    backend = backend or wallet.get_backend()
    summary = Summary()
    with counting_statements() as sql:
        try:
            _poll(wallet, backend, summary)
        finally:
            summary.statements += sql[0]
    return summary


@dataclass
class _Window:
    """What the node's window since the last tip said: its transactions, whether heights may
    be derived from the tip (no block arrived meanwhile), a malformed part of it, and the rows
    whose block left the main chain (only looked for after a reorg)."""

    transactions: dict[str, TxInfo] = field(default_factory=dict)
    trusted: bool = True
    error: Exception | None = None
    reorged: Q | None = None


def _poll(wallet: Wallet, backend, summary: Summary) -> None:
    try:
        tip = backend.chain_tip()
        summary.round_trips += 1
    except NotImplementedError:
        return _poll_by_txid(wallet, backend, summary, None, discover=True)
    except BadReply as exc:
        return _poll_by_txid(wallet, backend, summary, exc)
    moved = tip.hash != (wallet.last_block_hash or "") or tip.height != wallet.last_block_height
    # The same tip but another newest wallet transaction: something arrived unmined (a deposit
    # paid to us). Its window is the unconfirmed transactions: recorded now, nothing placed or
    # closed (no block arrived).
    arrived = not moved and tip.newest_tx is not None and tip.newest_tx != wallet.last_tx_marker
    window = _Window()
    if moved or arrived:
        try:
            window = _read_window(wallet, backend, tip, moved, summary)
        except BadReply as exc:
            return _poll_by_txid(wallet, backend, summary, exc)
    faults.point("poll.after_listsinceblock")
    summary.discovered += record_deposits(wallet, window.transactions.values())
    faults.point("poll.after_record")
    now = timezone.now()
    _place_and_ask(wallet, backend, tip, window, moved, summary, now)
    faults.point("poll.before_cursor")
    # Tells the listener this cycle read the window of a new tip, which holds every wallet
    # transaction announced with the block (no need to ask about them).
    summary.read_window = (moved or arrived) and window.trusted
    if summary.read_window:
        summary.window_txids = frozenset(window.transactions)
    _save_cursor(wallet, tip, window, summary, now)


def _read_window(wallet: Wallet, backend, tip, moved: bool, summary: Summary) -> _Window:
    """The wallet transactions since the last tip (after a reorg, since below the lowest
    reorged row). Raises BadReply when the node's answer cannot be read."""
    old_hash, old_height = wallet.last_block_hash or "", wallet.last_block_height
    # The last tip still on the main chain at its height means every block below it
    # is too: one getblockhash checks every open row's block.
    since, main, after = backend.since_tip(
        old_hash, [old_height] if moved and old_height is not None else []
    )
    summary.round_trips += 1
    window = _Window()
    if moved and old_height is not None and main.get(old_height) != old_hash:
        window.reorged, deeper, after = _after_reorg(wallet, backend, old_height, summary)
        since = SinceBlock(
            since.transactions + deeper.transactions,
            deeper.lastblock,
            {**since.errors, **deeper.errors},
        )
    window.transactions = {tx.txid: tx for tx in since.transactions}
    if since.errors:
        # A deposit inside a malformed entry must not be skipped: keep the cursor where it
        # is so the next cycle reads that window again (its rows are asked by txid below).
        window.error = BadReply(
            f"listsinceblock: {len(since.errors)} malformed entr(y/ies): "
            + "; ".join(f"{t}: {e}" for t, e in list(since.errors.items())[:5])
        )
        for txid in since.errors:
            window.transactions.pop(txid, None)
    if after != tip.hash or since.lastblock != tip.hash:
        # A block arrived during the cycle: a height derived from `tip` could be one off.
        # Record what arrived, derive nothing; that block's own cycle does the rest.
        window.trusted = False
    return window


def _place_and_ask(wallet: Wallet, backend, tip, window: _Window, moved: bool, summary, now):
    """The window's rows placed in their blocks, rows at the threshold closed, then the rows
    that need the node's word asked by txid and every one moved forward."""
    currency, trusted, txs = wallet.currency, window.trusted, window.transactions
    # Read before placing the window: a row the window re-places after a reorg is still
    # among these, so apply() sees its confirmations drop.
    rows = list(rows_to_ask(wallet, currency, tip.height if trusted else None, window.reorged))
    if trusted and txs:
        listed = {row.txid for row in rows}
        summary.checked += place_in_blocks(
            wallet, [i for i in txs.values() if i.txid not in listed], tip.height
        )
    if trusted and moved:  # the tip moved (an unchanged tip closes nothing new)
        summary.closed += close_at_threshold(wallet, currency, tip.height, window.reorged, now)
    faults.point(
        "poll.after_place"
    )  # placed and closed (committed); the asking and crediting to come
    infos = {row.txid: txs[row.txid] for row in rows if row.txid in txs}
    asked = [row.txid for row in rows if row.txid not in txs]
    height = tip.height if trusted else None
    if asked:
        answers, after = backend.get_transactions_at_tip(asked)
        summary.round_trips += -(-len(asked) // 2000)
        infos.update(answers)
        if after != tip.hash:
            height = None  # the tip moved while they were asked: place none of them
    if rows:
        summary += apply(rows, infos, currency, tip_height=height)


def _save_cursor(wallet: Wallet, tip, window: _Window, summary: Summary, now) -> None:
    """The cycle done: the tip it read becomes the wallet's cursor, unless heights could not
    be trusted or part of the window was malformed (then the error is recorded)."""
    done = {"last_polled_at": now, "last_poll_error": "", "last_poll_error_at": None}
    if window.trusted and window.error is None:
        done.update(last_block_hash=tip.hash, last_block_height=tip.height)
        if tip.newest_tx is not None:
            # Read before the window: a transaction arriving meanwhile is in the window and
            # only makes the next cycle read it again, never skip one.
            done.update(last_tx_marker=tip.newest_tx)
    if window.error is not None:
        done.update(
            last_poll_error=f"{type(window.error).__name__}: {window.error}"[:2000],
            last_poll_error_at=now,
        )
        summary.failed += 1
    _done(wallet, done)


def _done(wallet: Wallet, fields: dict) -> None:
    """The wallet's cursor and, when the tip moved, in its transaction the events of every
    change of its polled rows (a new tip moves every mined open row's confirmations without
    writing the row, and closes rows at the threshold)."""
    moved = fields.get("last_block_hash", wallet.last_block_hash) != wallet.last_block_hash
    if not moved:
        Wallet.objects.filter(pk=wallet.pk).update(**fields)
        return
    with transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(**fields)
        deposits_changed.send(NT, wallet_id=wallet.pk, using="default")


def _after_reorg(wallet: Wallet, backend, old_height: int, summary: Summary):
    """The last tip left the main chain. Check the block of every open row (one batch of
    getblockhash, one per height holding rows; rare, so reading the rows' blocks is fine) and
    read the window again from below the lowest of them, where the branches cannot differ
    (P + 1 below the last tip at least). Returns (gone rows, that window, tip after it)."""
    placed = set(
        NT.objects.polled()
        .filter(wallet=wallet, block_height__isnull=False)
        .values_list("block_height", "block_hash")
        .distinct()
    )
    base = max(
        0, min([old_height - wallet.currency.polling_threshold] + [h for h, _ in placed]) - 1
    )
    main = backend.block_hashes(sorted({h for h, _ in placed} | {base}))
    summary.round_trips += 1
    gone = Q(pk__in=[])
    for height, block in placed:
        if main.get(height) != block:
            gone |= Q(block_height=height, block_hash=block)
    deeper, _, after = backend.since_tip(main.get(base) or "", [])
    summary.round_trips += 1
    return gone, deeper, after


def _poll_by_txid(
    wallet: Wallet, backend, summary: Summary, wallet_error, discover: bool = False
) -> None:
    """Every polled row asked by txid, in batches: block.io (whose newest received page
    serves to discover deposits, `discover`), or a node whose tip or window we could not
    read (the error is recorded on the wallet, the cursor stays)."""
    infos: dict = {}
    if discover:
        try:
            infos = {tx.txid: tx for tx in backend.list_since_block(None).transactions}
            summary.round_trips += 1
        except NotImplementedError:
            pass
        except BadReply as exc:
            wallet_error = exc
    faults.point("poll.after_listsinceblock")
    summary.discovered += record_deposits(wallet, infos.values())
    faults.point("poll.after_record")
    rows = list(NT.objects.polled().filter(wallet=wallet))
    leftovers = [row.txid for row in rows if row.txid not in infos]
    if leftovers:
        infos.update(backend.get_transactions(leftovers))
        summary.round_trips += -(-len(leftovers) // 2000)
    if rows:
        summary += apply(rows, infos, wallet.currency)
    faults.point("poll.before_cursor")
    done = {"last_polled_at": timezone.now(), "last_poll_error": "", "last_poll_error_at": None}
    if wallet_error is not None:
        done.update(
            last_poll_error=f"{type(wallet_error).__name__}: {wallet_error}"[:2000],
            last_poll_error_at=done["last_polled_at"],
        )
        summary.failed += 1
    _done(wallet, done)
