"""Confirmation tracking: poll open network transactions, credit deposits exactly once.

A mined transaction's confirmations are `tip height - its block's height + 1`: between two
polls nothing changes for it but the tip, unless a reorg replaced its block. So each row
keeps where it was mined (block_hash, block_height), the wallet keeps the tip it last saw
(last_block_hash, last_block_height), and confirmations are derived from the two
(NetworkTransaction.objects.with_confirmations()), never rewritten row by row. One poll
cycle of a bitcoind wallet is, whatever the number of open rows:

- one batch of `getblockchaininfo` (the tip) and `getwalletinfo` (the wallet's transaction
  count). Unchanged tip and count: nothing else, except the rows with no block (unconfirmed,
  conflicted, vanished) asked by txid in one batch;
- an unchanged tip but a changed count (a wallet transaction arrived unmined, e.g. a deposit
  paid to us): one batch of `listsinceblock <last tip>` (the unconfirmed ones) and
  `getbestblockhash`; new deposits recorded, nothing placed or closed;
- a new tip: ONE batch of `listsinceblock <last tip>` (only the wallet transactions mined
  since, and the unconfirmed ones), `getblockhash <last tip's height>` (the last tip still
  there means every block below it is: no open row was reorged out) and `getbestblockhash`
  (a block arriving mid-cycle is seen, and no height is derived from a tip that moved). A
  reorg costs two more round trips: a getblockhash per height holding open rows (a row whose
  hash is no longer the main chain's there was reorged out), and `listsinceblock` again from
  below the lowest of them;
- a constant number of SQL statements: new deposits inserted, the window's rows placed in
  their blocks, rows past the polling threshold closed (range scan on block_height), then
  the few rows that need the node's word (no block, troubled, reorged, due a credit) read
  and asked by txid in one batch; deposits due a credit are credited one transaction each.

block.io has no blocks to follow (chain_tip raises NotImplementedError): its polled rows are
asked by txid in batches, as are a bitcoind wallet's when its node answers something unreadable.

THE RULE (issue 12), for everything that writes a network transaction row here, in
walletnotify and in rescan:

    A deposit row leaves the polled states (open, conflicted, vanished) only in the same
    database transaction that credits it, or when an operator closes it by hand, and then
    nothing credits it. Hand-closed rows are never touched by the poller, walletnotify or
    rescan: every write is a conditional UPDATE on the state the row was read in, never a
    write of a stale copy.

So: the bulk write of what the node said is `WHERE id = .. AND state = <state read>`; it never
closes an uncredited deposit. Crediting claims the row with one conditional UPDATE
(`credited_at IS NULL AND state = 'open'`) that also closes it when it is at the polling
threshold, and the ledger entries commit with that claim or not at all. Two workers never
credit twice; the UNIQUE (network transaction, address) constraint backs that, and the CHECK
network_tx_deposit_closed_only_credited backs the rule. A process killed anywhere leaves the
row polled and uncredited, or closed (or still open) and credited: never closed and uncredited.

A wallet whose node answers something malformed records the error on the wallet
(last_poll_error) and the other wallets are polled as usual; a malformed answer about one
transaction is recorded on that row (last_error).
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from cryptoadmin import faults

from . import services
from .backends import BackendError, BadReply
from .backends.base import SinceBlock, TxInfo
from .errors import CryptoadminError
from .models import (
    POLLED_STATES,
    Account,
    Address,
    Currency,
    NetworkTransaction,
    Transaction,
    Wallet,
)

log = logging.getLogger(__name__)
NT = NetworkTransaction
UPDATED_FIELDS = [
    "confirmations",
    "max_confirmations",
    "state",
    "state_changed_at",
    "closed_at",
    "flagged",
    "flag_reason",
    "last_error",
    "last_error_at",
    "block_hash",
    "block_height",
]
_statements: contextvars.ContextVar = contextvars.ContextVar("poll_statements", default=None)


@dataclass
class Summary:
    checked: int = 0
    changed: int = 0
    credited: int = 0
    closed: int = 0
    failed: int = 0
    discovered: int = 0
    round_trips: int = 0
    statements: int = 0

    def __iadd__(self, other: Summary):
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def __str__(self):
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))

    PEOPLE_WORDS = {
        "checked": ("transaction checked", "transactions checked"),
        "changed": ("changed", "changed"),
        "credited": ("deposit credited", "deposits credited"),
        "closed": ("closed", "closed"),
        "failed": ("could not be checked", "could not be checked"),
        "discovered": ("new transaction found", "new transactions found"),
    }

    def for_people(self) -> str:
        """'6 transactions checked, 1 deposit credited': what an operator's message says
        (round trips and statements are the poller's own figures, for logs and benchmarks)."""
        parts = [
            f"{n} {words[0] if n == 1 else words[1]}"
            for name, words in self.PEOPLE_WORDS.items()
            if (n := getattr(self, name)) or name == "checked"
        ]
        return ", ".join(parts)


def update_confirmations(currency: Currency) -> Summary:
    """Poll every enabled wallet of the currency. A failing wallet is recorded on the wallet
    (last_poll_error) and does not stop the others."""
    summary = Summary()
    for wallet in Wallet.objects.filter(currency=currency, enabled=True).select_related("currency"):
        try:
            summary += poll_wallet(wallet)
        except Exception as exc:  # noqa: BLE001 - any failure of one wallet, recorded on it
            if not isinstance(exc, BackendError):
                log.exception("polling %s failed", wallet.name)
            else:
                log.warning("polling %s failed: %s", wallet.name, exc)
            record_poll_error(wallet, exc)
            summary.failed += 1
    return summary


def record_poll_error(wallet: Wallet, exc: Exception) -> None:
    Wallet.objects.filter(pk=wallet.pk).update(
        last_poll_error=f"{type(exc).__name__}: {exc}"[:2000], last_poll_error_at=timezone.now()
    )


@contextmanager
def counting_statements():
    """Counts the SQL statements this thread sends meanwhile (bulk writes through the raw
    cursor count themselves with _count)."""
    box = [0]
    token = _statements.set(box)

    def wrapper(execute, sql, params, many, context):
        box[0] += 1
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(wrapper):
            yield box
    finally:
        _statements.reset(token)


def _count(n: int = 1) -> None:
    box = _statements.get()
    if box is not None:
        box[0] += n


def poll_wallet(wallet: Wallet, backend=None) -> Summary:
    backend = backend or wallet.get_backend()
    summary = Summary()
    with counting_statements() as sql:
        try:
            _poll(wallet, backend, summary)
        finally:
            summary.statements += sql[0]
    return summary


def _poll(wallet: Wallet, backend, summary: Summary) -> None:
    currency = wallet.currency
    try:
        tip = backend.chain_tip()
        summary.round_trips += 1
    except NotImplementedError:
        return _poll_by_txid(wallet, backend, summary, None, discover=True)
    except BadReply as exc:
        return _poll_by_txid(wallet, backend, summary, exc)
    old_hash, old_height = wallet.last_block_hash or "", wallet.last_block_height
    window: dict[str, TxInfo] = {}
    trusted, wallet_error, moved = True, None, tip.hash != old_hash or tip.height != old_height
    # The same tip but a wallet transaction count that changed: something arrived unmined (a
    # deposit paid to us). Its window is the unconfirmed transactions: recorded now, nothing
    # placed or closed (no block arrived).
    arrived = not moved and tip.tx_count is not None and tip.tx_count != wallet.last_tx_count
    reorged = None  # rows whose block left the main chain (only looked for after a reorg)
    if moved or arrived:
        try:
            # The last tip still on the main chain at its height means every block below it
            # is too: one getblockhash checks every open row's block.
            since, main, after = backend.since_tip(
                old_hash, [old_height] if moved and old_height is not None else []
            )
            summary.round_trips += 1
            if moved and old_height is not None and main.get(old_height) != old_hash:
                reorged, deeper, after = _after_reorg(wallet, backend, old_height, summary)
                since = SinceBlock(
                    since.transactions + deeper.transactions,
                    deeper.lastblock,
                    {**since.errors, **deeper.errors},
                )
        except BadReply as exc:
            return _poll_by_txid(wallet, backend, summary, exc)
        window = {tx.txid: tx for tx in since.transactions}
        if since.errors:
            # A deposit inside a malformed entry must not be skipped: keep the cursor where it
            # is so the next cycle reads that window again (its rows are asked by txid below).
            wallet_error = BadReply(
                f"listsinceblock: {len(since.errors)} malformed entr(y/ies): "
                + "; ".join(f"{t}: {e}" for t, e in list(since.errors.items())[:5])
            )
            for txid in since.errors:
                window.pop(txid, None)
        if after != tip.hash or since.lastblock != tip.hash:
            # A block arrived during the cycle: a height derived from `tip` could be one off.
            # Record what arrived, derive nothing; that block's own cycle does the rest.
            trusted = False
    faults.point("poll.after_listsinceblock")
    summary.discovered += record_deposits(wallet, window.values())
    faults.point("poll.after_record")
    now = timezone.now()
    # Read before placing the window: a row the window re-places after a reorg is still
    # among these, so apply() sees its confirmations drop.
    rows = list(rows_to_ask(wallet, currency, tip.height if trusted else None, reorged))
    if trusted and window:
        listed = {row.txid for row in rows}
        summary.checked += place_in_blocks(
            wallet, [i for i in window.values() if i.txid not in listed], tip.height
        )
    if trusted and moved:  # the tip moved (an unchanged tip closes nothing new)
        summary.closed += close_at_threshold(wallet, currency, tip.height, reorged, now)
    faults.point(
        "poll.after_place"
    )  # placed and closed (committed); the asking and crediting to come
    infos = {row.txid: window[row.txid] for row in rows if row.txid in window}
    asked = [row.txid for row in rows if row.txid not in window]
    height = tip.height if trusted else None
    if asked:
        answers, after = backend.get_transactions_at_tip(asked)
        summary.round_trips += -(-len(asked) // 2000)
        infos.update(answers)
        if after != tip.hash:
            height = None  # the tip moved while they were asked: place none of them
    if rows:
        summary += apply(rows, infos, currency, tip_height=height)
    faults.point("poll.before_cursor")
    # Not a counted field: tells the listener this cycle read the window of a new tip, which
    # holds every wallet transaction announced with the block (no need to ask about them).
    summary.read_window = (moved or arrived) and trusted
    done = {"last_polled_at": now, "last_poll_error": "", "last_poll_error_at": None}
    if trusted and wallet_error is None:
        done.update(last_block_hash=tip.hash, last_block_height=tip.height)
        if tip.tx_count is not None:
            # Read before the window: a transaction arriving meanwhile is in the window and
            # only makes the next cycle read it again, never skip one.
            done.update(last_tx_count=tip.tx_count)
    if wallet_error is not None:
        done.update(
            last_poll_error=f"{type(wallet_error).__name__}: {wallet_error}"[:2000],
            last_poll_error_at=now,
        )
        summary.failed += 1
    Wallet.objects.filter(pk=wallet.pk).update(**done)


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


def place_in_blocks(wallet: Wallet, infos, tip_height: int) -> int:
    """The window's mined transactions: record on their polled rows where they were mined,
    in one statement. Conditional on the row still being polled (hand-closed rows untouched)."""
    mined = [
        (i.txid, i.blockhash, tip_height - i.confirmations + 1, i.confirmations)
        for i in infos
        if i.confirmations > 0 and i.blockhash
    ]
    if not mined:
        return 0
    table = NT._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg2.extras import execute_values

            rows = execute_values(
                cursor.cursor,
                f"UPDATE {table} AS t SET block_hash = v.h, block_height = v.height::integer, "
                "confirmations = v.c::integer, max_confirmations = GREATEST(t.max_confirmations, "
                "v.c::integer) FROM (VALUES %s) AS v(txid, h, height, c) WHERE t.wallet_id = "
                f"{int(wallet.pk)} AND t.txid = v.txid AND t.state IN ('open', 'conflicted', "
                "'vanished') RETURNING t.id",
                mined,
                page_size=len(mined),
                fetch=True,
            )
            _count()
            return len(rows)
        cursor.executemany(
            f"UPDATE {table} SET block_hash = %s, block_height = %s, confirmations = %s, "
            f"max_confirmations = MAX(max_confirmations, %s) WHERE wallet_id = %s AND txid = %s "
            f"AND state IN ('open', 'conflicted', 'vanished')",
            [(h, height, c, c, wallet.pk, txid) for txid, h, height, c in mined],
        )
        return cursor.rowcount if cursor.rowcount and cursor.rowcount > 0 else 0


# -- the cycle's statements, compiled once ----------------------------------------------------
#
# The listener runs a cycle per block. Building these statements with the ORM each time (a
# UNION of four arms over every column, an UPDATE with expressions) cost more CPU than the
# rest of the cycle, node calls included. The ORM still writes them, once per process and
# shape, with sentinel values standing for the per-cycle ones (wallet, heights, now); each
# cycle runs the stored SQL with its own values in those places.

# Within the integer column's range: the ORM drops a comparison with an out-of-range value.
_SENTINELS = (2_100_000_001, 2_100_000_002, 2_100_000_003)
_SENTINEL_NOW = datetime(1971, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_compiled: dict = {}


def _compile(key, build, skip=()):
    """(sql, template) for `build(*_SENTINELS, _SENTINEL_NOW)` -> (sql, params), cached by
    `key`; `template` says for each parameter which argument it is, or its constant value."""
    hit = _compiled.get((connection.vendor, connection.alias, key))
    if hit is None:
        now = connection.ops.adapt_datetimefield_value(_SENTINEL_NOW)
        sql, params = build(*_SENTINELS, _SENTINEL_NOW)
        slots = {**{v: i for i, v in enumerate(_SENTINELS)}, now: len(_SENTINELS)}
        template = [
            ("arg", slots[p]) if isinstance(p, (int, str)) and p in slots else ("const", p)
            for p in params
        ]
        used = {v for kind, v in template if kind == "arg"}
        if not used >= set(range(len(_SENTINELS))) - set(skip):
            raise AssertionError(f"{key}: a per-cycle value vanished from the compiled SQL")
        hit = _compiled[(connection.vendor, connection.alias, key)] = (sql, template)
    return hit


def _params(template, *args, now=None):
    values = [*args, *([None] * (len(_SENTINELS) - len(args))), None]
    if now is not None:
        values[len(_SENTINELS)] = connection.ops.adapt_datetimefield_value(now)
    return [values[v] if kind == "arg" else v for kind, v in template]


# A UNION's columns are named col1, col2, ... in the model's field order (the ORM's own
# combinator aliases); the raw query maps them back.
_UNION_COLUMNS = {f"col{i}": f.column for i, f in enumerate(NT._meta.concrete_fields, 1)}


def _closing(wallet_id, upto, tip_height, now, gone: Q | None = None):
    confs = tip_height - F("block_height") + 1
    return (
        NT.objects.filter(
            wallet_id=wallet_id,
            state=NT.State.OPEN,
            block_height__isnull=False,
            block_height__lte=upto,
        )
        .exclude(type=NT.Type.DEPOSIT, credited_at__isnull=True)
        .exclude(gone or Q(pk__in=[])),
        dict(
            state=NT.State.CLOSED,
            state_changed_at=now,
            closed_at=now,
            confirmations=confs,
            max_confirmations=Greatest(F("max_confirmations"), confs),
            last_checked_at=now,
            last_error="",
            last_error_at=None,
        ),
    )


def _update_sql(queryset, values):
    from django.db.models.sql import UpdateQuery

    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    return query.get_compiler(queryset.db).as_sql()


def close_at_threshold(
    wallet: Wallet, currency: Currency, tip_height: int, gone: Q | None, now
) -> int:
    """Open rows whose block is polling_threshold deep, in one statement. Never an uncredited
    deposit (it closes only in the transaction that credits it), never a reorged row."""
    upto = tip_height - currency.polling_threshold + 1
    if gone is not None:  # after a reorg (rare): the rows gone vary, built each time
        rows, values = _closing(wallet.pk, upto, tip_height, now, gone)
        return rows.update(**values)
    sql, template = _compile(
        "close_at_threshold", lambda w, u, t, n: _update_sql(*_closing(w, u, t, n)), skip=()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(template, wallet.pk, upto, tip_height, now=now))
        return cursor.rowcount


def _asking(wallet_id, tip_height, due, gone: Q | None = None):
    # One index range scan per reason, in one UNION: an OR over them lets the planner read
    # every open row of the wallet (the cost would grow with N again).
    mine = NT.objects.filter(wallet_id=wallet_id).with_confirmations()
    arms = [
        mine.filter(state=NT.State.OPEN, block_height__isnull=True),
        mine.filter(state__in=[NT.State.CONFLICTED, NT.State.VANISHED]),
    ]
    if tip_height is not None:
        arms += [
            mine.filter(state=NT.State.OPEN, block_height__gt=tip_height),
            mine.filter(
                state=NT.State.OPEN,
                type=NT.Type.DEPOSIT,
                credited_at__isnull=True,
                block_height__lte=due,
            ),
        ]
        if gone is not None:
            arms.append(mine.filter(gone, state=NT.State.OPEN))
    return arms[0].union(*arms[1:])


def rows_to_ask(wallet: Wallet, currency: Currency, tip_height: int | None, gone: Q | None):
    """The polled rows that need the node's word: not placed in a block (unconfirmed, not
    known yet), troubled (conflicted, vanished), reorged out, or deposits due a credit (whose
    outputs the credit needs). Their confirmations as of the last tip are set in memory, so a
    drop is seen by apply()."""
    due = None if tip_height is None else tip_height - currency.crediting_threshold + 1
    if gone is not None:  # after a reorg (rare): the rows gone vary, built each time
        rows = _asking(wallet.pk, tip_height, due, gone)
    else:
        sql, template = _compile(
            ("rows_to_ask", tip_height is None),
            lambda w, t, d, _: _asking(
                w, None if tip_height is None else t, d
            ).query.sql_with_params(),
            skip=(1, 2) if tip_height is None else (),
        )
        rows = NT.objects.raw(
            sql, _params(template, wallet.pk, tip_height, due), translations=_UNION_COLUMNS
        )
    for row in rows:
        if row.confirmations_now != row.confirmations:
            row.confirmations = row.confirmations_now
            row.max_confirmations = max(row.max_confirmations, row.confirmations)
        yield row


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
    Wallet.objects.filter(pk=wallet.pk).update(**done)


def our_addresses(wallet_id: int, candidates) -> dict[str, Address]:
    wanted = set(candidates)
    if not wanted:
        return {}
    return {
        a.address: a
        for a in Address.objects.filter(
            wallet_id=wallet_id, kind=Address.Kind.RECEIVING, address__in=wanted
        ).select_related("account")
    }


def record_deposits(wallet: Wallet, infos) -> int:
    """Transactions paying this wallet's receiving addresses become its deposit rows, once:
    UNIQUE (wallet, txid, type). A transaction paying two of our wallets is a row of each.
    Existing rows are left alone (ignore_conflicts), hand-closed ones included."""
    paying = {info.txid: info for info in infos if info.received()}
    if not paying:
        return 0
    ours = our_addresses(wallet.pk, {a for info in paying.values() for a in info.received()})
    new = [info for info in paying.values() if any(a in ours for a in info.received())]
    if not new:
        return 0
    known = set(
        NT.objects.filter(
            wallet=wallet, type=NT.Type.DEPOSIT, txid__in=[i.txid for i in new]
        ).values_list("txid", flat=True)
    )
    now = timezone.now()
    created = NT.objects.bulk_create(
        [
            NT(
                currency_id=wallet.currency_id,
                wallet=wallet,
                txid=i.txid,
                type=NT.Type.DEPOSIT,
                confirmations=max(i.confirmations, 0),
                max_confirmations=max(i.confirmations, 0),
                opened_at=now,
                amount=sum(units for a, units in i.received().items() if a in ours),
            )
            for i in new
            if i.txid not in known
        ],
        ignore_conflicts=True,
    )
    return len(created)


def apply(
    rows: list[NetworkTransaction], infos: dict, currency: Currency, tip_height: int | None = None
) -> Summary:
    """Move each row forward from what the node said; write only what changed, in bulk.

    Every write is conditional on the state the row was read in: a row an operator closed
    by hand meanwhile (or another worker moved on) is skipped, never overwritten. Deposits
    due a credit are credited, and closed if at the polling threshold, in one transaction each."""
    summary = Summary(checked=len(rows))
    now = timezone.now()
    read_states = {row.pk: row.state for row in rows}
    changed, changed_fields, to_credit = [], set(), []
    for row in rows:
        info = infos.get(row.txid)
        before = [getattr(row, f) for f in UPDATED_FIELDS]
        if info is None or isinstance(info, BackendError):
            _record_missing(row, info, now)
            summary.failed += 1
        else:
            _record_state(row, info, currency, now)
            _record_block(row, info, tip_height)
            if (
                row.type == NT.Type.DEPOSIT
                and row.credited_at is None
                and row.state == NT.State.OPEN
                and info.confirmations >= currency.crediting_threshold
            ):
                to_credit.append((row, info))
            if row.state == NT.State.CLOSED and before[2] != NT.State.CLOSED:
                summary.closed += 1
        diff = {f for f, old in zip(UPDATED_FIELDS, before, strict=True) if getattr(row, f) != old}
        if diff:
            changed.append(row)
            changed_fields |= diff
        row.last_checked_at = now
    changed_ids = {r.pk for r in changed}
    unchanged = [r.pk for r in rows if r.pk not in changed_ids]
    faults.point("poll.before_write")
    with transaction.atomic():
        if changed:
            # Only the columns that moved (usually confirmations), last_checked_at folded in.
            write_changes(
                changed,
                [f for f in UPDATED_FIELDS if f in changed_fields] + ["last_checked_at"],
                read_states=read_states,
            )
        if unchanged:
            NT.objects.polled().filter(pk__in=unchanged).update(last_checked_at=now)
    summary.changed = len(changed)
    faults.point("poll.after_write")
    for row, info in to_credit:
        if credit_deposit(row, info, currency):
            summary.credited += 1
            if row.state == NT.State.CLOSED:
                summary.closed += 1
    return summary


_CASTS = {
    "confirmations": "integer",
    "max_confirmations": "integer",
    "state": "text",
    "state_changed_at": "timestamptz",
    "closed_at": "timestamptz",
    "flagged": "boolean",
    "flag_reason": "text",
    "last_error": "text",
    "last_error_at": "timestamptz",
    "last_checked_at": "timestamptz",
    "block_hash": "text",
    "block_height": "integer",
}


def write_changes(
    rows: list[NetworkTransaction],
    columns: list[str] = UPDATED_FIELDS,
    *,
    read_states: dict[int, str],
) -> None:
    """Write `columns` of many rows in one statement, each only if its state is still the one
    it was read in (`read_states`: id -> state): never a write of a stale copy.

    Django's bulk_update builds a CASE per field per row: 3.6 s for 1,000 rows here.
    One UPDATE ... FROM (VALUES ...) on PostgreSQL, executemany on SQLite, is milliseconds."""
    table = NT._meta.db_table
    values = [(row.pk, read_states[row.pk], *(getattr(row, f) for f in columns)) for row in rows]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg2.extras import execute_values

            sets = ", ".join(f"{f} = v.{f}::{_CASTS[f]}" for f in columns)
            execute_values(
                cursor.cursor,
                f"UPDATE {table} AS t SET {sets} FROM (VALUES %s) AS v(id, read_state, "
                f"{', '.join(columns)}) WHERE t.id = v.id AND t.state = v.read_state",
                values,
                page_size=5000,
            )
            _count(-(-len(values) // 5000))
        else:
            prep = [NT._meta.get_field(f) for f in columns]
            sets = ", ".join(f"{f} = %s" for f in columns)
            cursor.executemany(
                f"UPDATE {table} SET {sets} WHERE id = %s AND state = %s",
                [
                    (
                        *(
                            field.get_db_prep_save(value, connection)
                            for field, value in zip(prep, v[2:], strict=True)
                        ),
                        v[0],
                        v[1],
                    )
                    for v in values
                ],
            )


def _record_state(row: NetworkTransaction, info: TxInfo, currency: Currency, now) -> None:
    confs = info.confirmations
    row.last_error, row.last_error_at = "", None
    if confs < 0:
        if row.state != NT.State.CONFLICTED:
            row.state, row.state_changed_at = NT.State.CONFLICTED, now
            # Always a person's business: a credited deposit may be money the books no longer
            # hold; an uncredited one is a payment the user will ask about (double spend?).
            credit = "credited" if row.credited_at is not None else "never credited"
            _flag(row, f"conflicted at {now:%Y-%m-%d %H:%M} (confirmations {confs}), {credit}")
        row.confirmations = confs
        return
    if row.state in (NT.State.CONFLICTED, NT.State.VANISHED):
        row.state, row.state_changed_at = NT.State.OPEN, now  # it came back
    if (
        confs < row.confirmations
        and row.credited_at is not None
        and confs < currency.crediting_threshold
    ):
        _flag(
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


def _record_block(row: NetworkTransaction, info: TxInfo, tip_height: int | None) -> None:
    """Where the node says it is mined; the height only when derived from a tip read in the
    same round trip (otherwise it stays unplaced and is asked again by txid)."""
    if info.confirmations > 0 and info.blockhash:
        if tip_height is not None:
            row.block_hash, row.block_height = info.blockhash, tip_height - info.confirmations + 1
        elif row.block_hash != info.blockhash:
            row.block_hash, row.block_height = info.blockhash, None  # placed by the next poll
    else:
        row.block_hash, row.block_height = "", None


def _record_missing(row: NetworkTransaction, error, now) -> None:
    from .backends import TransactionNotFound

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
        _flag(row, reason)


def _flag(row, reason):
    row.flagged = True
    row.flag_reason = (row.flag_reason + "\n" if row.flag_reason else "") + reason


def credit_deposit(row: NetworkTransaction, info: TxInfo, currency: Currency) -> int:
    """Credit each of this wallet's addresses the transaction pays, exactly once, and close the
    row if it is at the polling threshold, all in one transaction. Returns 1 if this call credited.

    The claim requires the row still open and uncredited: a row closed by hand, or credited by
    another worker, is 0 rows and nothing is written."""
    ours = our_addresses(row.wallet_id, info.received())
    if not ours:
        _flag_unpayable(row)
        return 0
    network = services.system_account(Wallet.objects.get(pk=row.wallet_id), Account.Code.NETWORK)
    now = timezone.now()
    claim = {"credited_at": now}
    if info.confirmations >= currency.polling_threshold:
        claim.update(state=NT.State.CLOSED, state_changed_at=now, closed_at=now)
    try:
        with transaction.atomic():
            # The claim: whoever flips credited_at first credits; everyone else sees 0 rows.
            claimed = NT.objects.filter(
                pk=row.pk, credited_at__isnull=True, state=NT.State.OPEN
            ).update(**claim)
            if not claimed:
                return 0
            for address, amount in info.received().items():
                if address in ours:
                    services.post(
                        network,
                        ours[address].account,
                        amount,
                        Transaction.Kind.DEPOSIT,
                        network_transaction_id=row.pk,
                        address=ours[address],
                        label=f"deposit {row.txid[:16]}",
                    )
            faults.point("credit.before_commit")
    except IntegrityError:
        # The UNIQUE (network transaction, address) backstop fired: someone else credited.
        return 0
    faults.point("credit.after_commit")
    for field, value in claim.items():
        setattr(row, field, value)
    return 1


def _flag_unpayable(row: NetworkTransaction) -> None:
    """A deposit due a credit that pays none of its wallet's receiving addresses (one was
    removed or changed kind): it stays polled and flagged until an operator closes it by hand."""
    reason = "due a credit but pays none of this wallet's receiving addresses: close it by hand"
    if row.flagged and reason in row.flag_reason:
        return
    _flag(row, reason)
    NT.objects.polled().filter(pk=row.pk).update(flagged=True, flag_reason=row.flag_reason)


def update_one(currency: Currency, txid: str) -> Summary:
    """walletnotify's fast path: this txid on every enabled wallet of the currency, now.

    A wallet whose node fails does not stop the others; the error is raised at the end only
    if no wallet could be asked (the scheduler's poll is the safety net)."""
    summary = Summary()
    failures: list[BackendError] = []
    wallets = list(
        Wallet.objects.filter(currency=currency, enabled=True).select_related("currency")
    )
    for wallet in wallets:
        try:
            info = wallet.get_backend().get_transactions([txid]).get(txid)
        except BackendError as exc:
            log.warning("walletnotify %s on %s failed: %s", txid, wallet.name, exc)
            failures.append(exc)
            summary.failed += 1
            continue
        summary.round_trips += 1
        if isinstance(info, TxInfo):
            summary.discovered += record_deposits(wallet, [info])
        faults.point("notify.after_record")
        rows = list(NT.objects.polled().filter(wallet=wallet, txid=txid))
        if rows:
            summary += apply(rows, {txid: info}, currency)
    if failures and len(failures) == len(wallets):
        raise failures[0]
    return summary


def record_transactions(wallet: Wallet, txids: list[str], backend=None) -> Summary:
    """The listener's fast path: transactions the node just announced, asked about in one
    batch; those of this wallet are recorded (deposits) and their rows moved, the others
    (not the wallet's) ignored."""
    backend = backend or wallet.get_backend()
    summary = Summary()
    with counting_statements() as sql:
        infos = backend.get_transactions(txids)
        summary.round_trips += -(-len(txids) // 2000)
        ours = {txid: info for txid, info in infos.items() if isinstance(info, TxInfo)}
        if ours:
            summary.discovered += record_deposits(wallet, ours.values())
            faults.point("notify.after_record")
            rows = list(NT.objects.polled().filter(wallet=wallet, txid__in=list(ours)))
            if rows:
                summary += apply(rows, ours, wallet.currency)
    summary.statements += sql[0]
    return summary


def check_rows(rows) -> Summary:
    """The admin's "Check now": these rows, against their wallets' nodes, now."""
    summary = Summary()
    by_wallet: dict[int, list] = {}
    for row in rows:
        if row.state not in POLLED_STATES:
            continue  # closed rows (by the tracker or by hand) are settled
        by_wallet.setdefault(row.wallet_id, []).append(row)
    for wallet in Wallet.objects.filter(pk__in=by_wallet).select_related("currency"):
        group = list(NT.objects.polled().filter(pk__in=[r.pk for r in by_wallet[wallet.pk]]))
        infos = wallet.get_backend().get_transactions([r.txid for r in group])
        summary += apply(group, infos, wallet.currency)
    return summary


def poll_all_currencies() -> dict:
    """The scheduler's entry point: every enabled currency."""
    return {c.code: str(update_confirmations(c)) for c in Currency.objects.filter(enabled=True)}


class CloseRefused(CryptoadminError, ValueError):
    pass


def close_by_hand(row_ids, user, reason: str) -> list[NetworkTransaction]:
    """An operator closes polled rows with a reason; moves no money. Closed rows stay closed."""
    reason = (reason or "").strip()
    if not reason:
        raise CloseRefused("A reason is required to close a network transaction by hand.")
    now = timezone.now()
    with transaction.atomic():
        rows = list(NT.objects.select_for_update().polled().filter(pk__in=list(row_ids)))
        for row in rows:
            row.state, row.state_changed_at, row.closed_at = NT.State.CLOSED_BY_HAND, now, now
            row.closed_by, row.close_reason = user, reason
        NT.objects.bulk_update(
            rows, ["state", "state_changed_at", "closed_at", "closed_by", "close_reason"]
        )
    return rows
