"""The cycle's statements, compiled once: closing rows at the polling threshold and
selecting the rows that need the node's word.

The listener runs a cycle per block. Building these statements with the ORM each time (a
UNION of four arms over every column, an UPDATE with expressions) cost more CPU than the
rest of the cycle, node calls included. The ORM still writes them, once per process and
shape, with sentinel values standing for the per-cycle ones (wallet, heights, now); each
cycle runs the stored SQL with its own values in those places."""

from datetime import UTC, datetime

from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Greatest

from ..models import Currency, NetworkTransaction, Wallet

NT = NetworkTransaction


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
