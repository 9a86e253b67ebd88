"""Cross-process invalidation through PostgreSQL LISTEN/NOTIFY.

Writers NOTIFY inside their own transaction (balances/signals.py), so PostgreSQL delivers only
committed changes, and every committed change. Each process has one listener thread with its own
psycopg2 connection. It also sends a heartbeat (SELECT 1) every `max_staleness / 4` seconds:
PostgreSQL signals listening sessions before a writer's COMMIT returns, so the reply to a
heartbeat sent at time H comes after every notification of the commits done before H. Memory is
served only while the last answered heartbeat was sent less than `max_staleness` ago, which
bounds staleness even if the connection hangs without an error. If the connection fails, the
cache is cleared, nothing is stored or served from memory until LISTEN is back (reads go to the
database), and the listener reconnects.
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import time
import uuid

from django.db import connections

CHANNEL = "balances_changed"
# Our own commits are invalidated in-process at commit; skip their echo.
PROCESS_TOKEN = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes
MAX_CHUNKS = 20  # beyond that, tell everyone to drop everything

log = logging.getLogger(__name__)


def payloads(user_ids) -> list[str]:
    """JSON payloads naming the users, each under PostgreSQL's size limit."""
    out, chunk, size = [], [], 0
    for user_id in sorted(user_ids):
        item = len(json.dumps(user_id)) + 1
        if chunk and size + item > MAX_PAYLOAD:
            out.append(chunk)
            chunk, size = [], 0
        chunk.append(user_id)
        size += item
    if chunk:
        out.append(chunk)
    if len(out) > MAX_CHUNKS:
        return [json.dumps({"p": PROCESS_TOKEN, "all": True})]
    return [json.dumps({"p": PROCESS_TOKEN, "u": c}) for c in out]


def notify(user_ids, using: str = "default") -> None:
    """NOTIFY in the caller's transaction: PostgreSQL delivers it at commit, never on rollback."""
    with connections[using].cursor() as cursor:
        for payload in payloads(user_ids):
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])


class Listener:
    def __init__(
        self,
        cache,
        *,
        max_staleness: float = 2.0,
        using: str = "default",
        reconnect_delay: float = 0.2,
    ):
        self.cache = cache
        self.max_staleness = max_staleness
        self.heartbeat = max_staleness / 4
        self.using = using
        self.reconnect_delay = reconnect_delay
        self.conn = None
        self.alive_at = float("-inf")  # send time of the last answered heartbeat
        cache.valid_until = float("-inf")  # nothing served from memory before LISTEN is up
        self.connects = self.disconnects = self.notifications = 0
        self.last_error = ""
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def _alive(self, sent: float) -> None:
        # Everything committed before `sent` has been applied: memory may serve until sent + bound.
        self.alive_at = sent
        self.cache.valid_until = sent + self.max_staleness

    def start(self) -> None:
        # Connect in the caller's thread: the first reads of a process can already be cached.
        try:
            self._connect()
        except Exception as exc:
            self._lost(exc)
        self._thread = threading.Thread(target=self._run, name="balances-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def backend_pid(self):
        return self.conn.get_backend_pid() if self.conn is not None else None

    def _connect(self) -> None:
        import psycopg2

        params = connections[self.using].get_connection_params()
        params.pop("cursor_factory", None)
        params.setdefault("connect_timeout", 5)
        # The kernel notices a peer that vanished without closing; heartbeats cover the rest.
        params.update(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2)
        conn = psycopg2.connect(**params)
        conn.set_session(autocommit=True)
        with conn.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self.conn = conn
        sent = time.monotonic()
        # Anything loaded before LISTEN may have missed a notification (loads in flight too):
        # start from nothing.
        self.cache.clear()
        self._alive(sent)
        self.connects += 1
        self.connected.set()

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _lost(self, exc) -> None:
        self.connected.clear()
        self.alive_at = float("-inf")
        self.cache.valid_until = float("-inf")  # serve and store nothing until LISTEN is back
        self.disconnects += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._close()
        self.cache.clear()
        log.warning(
            "balance cache: LISTEN connection lost (%s); memory cleared, reconnecting",
            self.last_error,
        )

    def _run(self) -> None:
        next_beat = time.monotonic()
        while not self._stop.is_set():
            if self.conn is None:
                if self._stop.wait(self.reconnect_delay):
                    break
                try:
                    self._connect()
                    next_beat = time.monotonic() + self.heartbeat
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            try:
                wait = max(0.0, min(next_beat - time.monotonic(), 0.25))
                readable, _, _ = select.select([self.conn], [], [], wait)
                if readable:
                    self.conn.poll()
                if time.monotonic() >= next_beat:
                    sent = time.monotonic()
                    with self.conn.cursor() as cursor:
                        cursor.execute("SELECT 1")
                        cursor.fetchone()
                    self._drain()
                    self._alive(sent)
                    next_beat = sent + self.heartbeat
                else:
                    self._drain()
            except Exception as exc:
                if self._stop.is_set():
                    break
                self._lost(exc)

    def _drain(self) -> None:
        conn = self.conn
        while conn.notifies:
            note = conn.notifies.pop(0)
            self.notifications += 1
            try:
                body = json.loads(note.payload)
            except ValueError:
                self.cache.clear()  # unreadable: be safe
                continue
            if body.get("t"):  # a trigger's: API tokens or currencies changed (any process)
                self.cache.reference.invalidate(body["t"])
                continue
            if body.get("p") == PROCESS_TOKEN:
                continue
            if body.get("all"):
                self.cache.clear()
            else:
                self.cache.invalidate(body.get("u") or [])
