"""Who may work on a wallet's broadcasts now: the per-wallet lock (PostgreSQL) and the
send's lease, the database fact that says a send is still in flight."""

import time
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection

# First key of the two-int advisory lock; the second is the wallet id.
LOCK_CLASS = 0x4341_4231  # "CAB1"


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


def send_budget() -> float:
    """Seconds the node calls of one send may take: the gathering reads, then the one
    state-changing call, whose own timeouts are cut to what is left."""
    return 2 * settings.NODE_RPC_TIMEOUT


def lease_length() -> timedelta:
    return timedelta(seconds=send_budget() + settings.BROADCAST_LEASE_MARGIN)


def lease_from(now):
    """(sending_until for the database, deadline for the node call on this process's clock)."""
    return now + lease_length(), time.monotonic() + send_budget()
