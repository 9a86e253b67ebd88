"""The dispatcher's loop: wake on commit, hand each endpoint with due deliveries to a thread.

PostgreSQL: LISTEN on the outbox's channel (the NOTIFY is sent in the events' own transaction,
so it arrives when they commit); otherwise a short poll. An endpoint is served by one thread
of the pool at a time in this process, so a slow or failing endpoint holds one thread and
never another endpoint's events."""

from __future__ import annotations

import logging
import os
import select
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections

from .dispatch import due_endpoints, next_due_in, serve_endpoint
from .outbox import CHANNEL

log = logging.getLogger(__name__)
ROUNDS = 20  # batches one endpoint's thread sends before going back to the pool


class Waker:
    """Blocks until a NOTIFY arrives (PostgreSQL), a job ends (`kick`), or the timeout passes."""

    def __init__(self, using="default"):
        self.using = using
        self.conn = None
        self.pipe_r, self.pipe_w = os.pipe()
        os.set_blocking(self.pipe_r, False)
        os.set_blocking(self.pipe_w, False)

    def connect(self) -> None:
        if connections[self.using].vendor != "postgresql":
            return
        import psycopg2

        params = connections[self.using].get_connection_params()
        params.pop("cursor_factory", None)
        params.setdefault("connect_timeout", 5)
        conn = psycopg2.connect(**params)
        conn.set_session(autocommit=True)
        with conn.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self.conn = conn

    def kick(self) -> None:
        try:
            os.write(self.pipe_w, b"x")
        except BlockingIOError:
            pass  # already kicked

    def wait(self, timeout: float) -> None:
        fds = [self.pipe_r] + ([self.conn] if self.conn is not None else [])
        readable, _, _ = select.select(fds, [], [], timeout)
        if self.pipe_r in readable:
            try:
                while os.read(self.pipe_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if self.conn is not None and self.conn in readable:
            self.conn.poll()
            self.conn.notifies.clear()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        os.close(self.pipe_r)
        os.close(self.pipe_w)


class Dispatcher:
    def __init__(self, *, workers=None, batch=100, poll=None):
        self.workers = workers or settings.WEBHOOK_WORKERS
        self.batch = batch
        # Without NOTIFY (SQLite) a short poll; with it, a slower one as a safety net.
        self.poll = poll
        self.stop = threading.Event()
        self.busy: set[int] = set()
        self.lock = threading.Lock()
        self.sent = 0

    def run(self, *, until_idle=False) -> int:
        waker = Waker()
        waker.connect()
        poll = self.poll or (1.0 if waker.conn is not None else 0.1)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="webhooks")
        try:
            while not self.stop.is_set():
                try:
                    started = self._start_due(pool, waker)
                    wait = next_due_in()
                except DatabaseError as exc:
                    # A locked SQLite file or a PostgreSQL restart: wait and try again.
                    log.warning("deliver_events: database error, retrying: %s", exc)
                    connection.close()
                    started, wait = 1, poll
                if until_idle and not started and not self.busy:
                    break
                wait = poll if wait is None else min(poll, wait)
                close_old_connections()
                waker.wait(max(wait, 0.01))
        finally:
            pool.shutdown(wait=True)
            waker.close()
        return self.sent

    def _start_due(self, pool, waker) -> int:
        started = 0
        for endpoint_id in due_endpoints():
            with self.lock:
                if endpoint_id in self.busy:
                    continue
                self.busy.add(endpoint_id)
            pool.submit(self._job, endpoint_id, waker)
            started += 1
        return started

    def _job(self, endpoint_id, waker) -> None:
        try:
            # A busy endpoint keeps its thread for a few batches in a row (no trip through
            # the main loop between them); a bounded number, so a stop is heard.
            for _ in range(ROUNDS):
                sent = serve_endpoint(endpoint_id, self.batch)
                with self.lock:
                    self.sent += sent
                if sent < self.batch or self.stop.is_set():
                    break
        except Exception:  # one endpoint's bug must not stop the others
            log.exception("webhook delivery to endpoint %s failed", endpoint_id)
        finally:
            connection.close()  # this thread's own connection
            with self.lock:
                self.busy.discard(endpoint_id)
            waker.kick()
