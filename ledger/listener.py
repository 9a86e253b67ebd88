"""The node listener: bitcoind's ZMQ feed drives confirmation tracking, with no process per
notification.

`-walletnotify` starts a whole Django process per call (about a CPU-second), twice per
deposit and three times per send. Instead the node publishes every new block hash and
transaction hash on ZMQ (`-zmqpubhashblock`, `-zmqpubhashtx`) and one long-running process
(`manage.py listen_node`, kept alive by the process manager) subscribes:

- a new block starts a poll cycle of the wallets on that node at once (poll_wallet: the tip,
  one window batch, a constant number of statements);
- new transactions are asked about in one `gettransaction` batch per wake-up, and those of
  the wallet are recorded at once (record_transactions). The node publishes a
  transaction again when it is mined: txids handled recently are skipped;
- ZMQ drops what is published while the subscriber is away (a node restart, a listener
  restart): a reconnection (seen on the socket's monitor) or a gap in a topic's sequence
  numbers starts a poll cycle; one also runs at start and every `resync` seconds. A deposit
  missed while away is found by the cycle of the block that mines it (its window), and the
  scheduler's poll stays the safety net.

Everything that writes goes through ledger/confirmations/, so THE RULE there holds here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
from collections import OrderedDict

import zmq
from django.db import InterfaceError, OperationalError, connection

from .backends import BackendError
from .confirmations.cycle import poll_wallet, record_poll_error
from .confirmations.entry_points import record_transactions
from .models import Wallet
from .txids import is_txid

log = logging.getLogger(__name__)
SEEN_LIMIT = 100_000  # txids remembered, so the mined copy of a notified one costs nothing


def on_database(work) -> None:
    """Run one wake-up's work on the process's database connection, kept across wake-ups:
    opening one per block (close_old_connections with DB_CONN_MAX_AGE=0) cost more CPU than
    the cycle. A connection the database dropped (a restart, an administrator) fails the work
    at its first statement: it is closed and the work runs once more on a new one (every step
    of a cycle may run twice: node calls that read, writes conditional on what was read)."""
    if connection.connection is not None and (
        connection.errors_occurred or connection.needs_rollback
    ):
        if connection.needs_rollback or not connection.is_usable():
            connection.close()
        else:
            connection.errors_occurred = False
    try:
        work()
    except (OperationalError, InterfaceError):
        log.warning("listener: database connection lost; once more on a new one")
        connection.close()
        work()


def bind_notify_socket(path: str) -> socket.socket:
    """The unix datagram socket deploy/walletnotify writes to (group-writable: bitcoind's user
    joins the service's group). A file left by a listener that died is replaced; one that a
    running listener holds is not."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        raise RuntimeError(f"another listener already receives walletnotify on {path}")
    finally:
        probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o660)
    sock.setblocking(False)
    return sock


def drain_datagrams(sock) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(512))
        except BlockingIOError:
            return out


def _zmq_groups(wallets, endpoint: str | None, notify_socket: str | None) -> dict[str, list[int]]:
    """Wallet ids by ZMQ endpoint ("" for those heard only through the notify socket)."""
    groups: dict[str, list[int]] = {}
    for wallet in wallets:
        url = endpoint or (wallet.backend_settings or {}).get("zmq")
        if not url and not notify_socket:
            raise ValueError(f"wallet {wallet.name} has no 'zmq' endpoint in its backend settings")
        groups.setdefault(url or "", []).append(wallet.pk)
    return groups


class Listener:
    def __init__(
        self,
        wallets: list[Wallet],
        endpoint: str | None = None,
        resync: float = 60.0,
        out=None,
        notify_socket: str | None = None,
    ):
        self.out = out or (lambda line: None)
        self.resync = resync
        self.context = zmq.Context()
        self.poller = zmq.Poller()
        self.groups = _zmq_groups(wallets, endpoint, notify_socket)
        self.sockets: dict[zmq.Socket, str] = {}
        self.monitors: dict[zmq.Socket, str] = {}
        self.connected: set[str] = set()
        # bitcoind's -walletnotify through deploy/walletnotify: "CURRENCY TXID" datagrams.
        self.by_currency: dict[str, list[int]] = {}
        for wallet in wallets:
            self.by_currency.setdefault(wallet.currency.code, []).append(wallet.pk)
        self.notify_socket = bind_notify_socket(notify_socket) if notify_socket else None
        self.notify_fd = None
        if self.notify_socket is not None:
            self.notify_fd = self.notify_socket.fileno()
            self.poller.register(self.notify_socket, zmq.POLLIN)
        for url in self.groups:
            if url:  # wallets of nodes without ZMQ: the socket and the resync cycles
                self._subscribe(url)
        self.sequence: dict[tuple[str, bytes], int] = {}
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.handled = 0  # notifications handled (for the benchmark)
        # One backend per wallet for the process's life: its kept-alive connection saves a TCP
        # and HTTP handshake per wake-up (it reconnects by itself when the node restarts).
        self.backends: dict[int, object] = {}

    def _subscribe(self, url: str) -> None:
        sock = self.context.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 0)  # never drop on our side: a burst is drained in one go
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        for topic in (b"hashblock", b"hashtx"):
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        # Connection events: a reconnect (the node restarted) starts a poll cycle, as
        # whatever the node published meanwhile is lost.
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.poller.register(monitor, zmq.POLLIN)
        self.monitors[monitor] = url
        sock.connect(url)
        self.poller.register(sock, zmq.POLLIN)
        self.sockets[sock] = url

    def close(self) -> None:
        for sock in self.sockets:
            sock.disable_monitor()
            sock.close(linger=0)
        for monitor in self.monitors:
            monitor.close(linger=0)
        self.context.term()
        if self.notify_socket is not None:
            path = self.notify_socket.getsockname()
            self.notify_socket.close()
            with contextlib.suppress(OSError):
                os.unlink(path)

    def run(self, should_stop=lambda: False) -> None:
        self.poll_all(reason="start")
        next_resync = time.monotonic() + self.resync
        while not should_stop():
            timeout = max(0.0, min(1.0, next_resync - time.monotonic()))
            ready = dict(self.poller.poll(timeout * 1000))
            for sock in ready:
                if sock == self.notify_fd:  # zmq's poller names a plain socket by its fd
                    self.on_notified(drain_datagrams(self.notify_socket))
                elif sock in self.monitors:
                    self.on_connect(self.monitors[sock], sock)
                else:
                    self.handle(self.sockets[sock], self.drain(sock))
            if time.monotonic() >= next_resync:
                self.poll_all(reason="resync")
                next_resync = time.monotonic() + self.resync

    def on_connect(self, url: str, monitor) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
        if url in self.connected:
            self.poll_all(reason="reconnected", urls=[url])
        self.connected.add(url)

    def drain(self, sock) -> list[tuple[bytes, bytes, int | None]]:
        """Every message waiting on the socket: (topic, body, sequence)."""
        messages = []
        while True:
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return messages
            if len(parts) < 2:
                continue
            seq = (
                struct.unpack("<I", parts[2])[0] if len(parts) > 2 and len(parts[2]) == 4 else None
            )
            messages.append((parts[0], parts[1], seq))

    def handle(self, url: str, messages) -> None:
        """One wake-up: a block (or a gap in the feed) is a poll cycle; transactions a batch."""
        started = time.perf_counter()
        block, gap, txids = False, False, []
        for topic, body, seq in messages:
            last = self.sequence.get((url, topic))
            if seq is not None:
                if last is not None and seq != (last + 1) % 2**32:
                    gap = (
                        True  # missed messages, or the node restarted (its sequence restarts at 0)
                    )
                self.sequence[(url, topic)] = seq
            if topic == b"hashblock":
                block = True
            elif topic == b"hashtx" and len(body) == 32:
                txid = body.hex()
                if txid not in self.seen:
                    txids.append(txid)
        self.handled += len(messages)
        on_database(lambda: self._act(url, block, gap, txids, started))
        for txid in txids:
            self.seen[txid] = None
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)

    def _act(self, url, block, gap, txids, started) -> None:
        for wallet in Wallet.objects.filter(pk__in=self.groups[url], enabled=True).select_related(
            "currency"
        ):
            try:
                summary = None
                if block or gap:
                    summary = poll_wallet(
                        wallet, self.backend(wallet)
                    )  # a new tip's window: the unconfirmed too
                    # Recorded from the window: their hashtx, announced with the block and
                    # often read in a later wake-up, need no gettransaction.
                    for txid in summary.window_txids:
                        self.seen[txid] = None
                    self.out(
                        f"{wallet.name}: {'block' if block else 'gap in the feed'}: {summary} "
                        f"({(time.perf_counter() - started) * 1000:.0f} ms)"
                    )
                if txids and not (summary is not None and summary.read_window):
                    summary = record_transactions(wallet, txids, self.backend(wallet))
                    if summary.discovered or summary.changed:
                        self.out(
                            f"{wallet.name}: {len(txids)} transaction(s): {summary} "
                            f"({(time.perf_counter() - started) * 1000:.0f} ms)"
                        )
            except Exception as exc:  # noqa: BLE001 - one wallet's failure is recorded, the feed goes on
                if not isinstance(exc, BackendError):
                    log.exception("listener: %s failed", wallet.name)
                record_poll_error(wallet, exc)

    def on_notified(self, datagrams: list[bytes]) -> None:
        """walletnotify's txids, per currency, recorded in one batch per wallet of it."""
        started = time.perf_counter()
        by_currency: dict[str, list[str]] = {}
        for datagram in datagrams:
            currency, _, txid = datagram.decode("ascii", "replace").partition(" ")
            if (
                currency in self.by_currency
                and is_txid(txid)
                and txid not in by_currency.get(currency, ())
            ):
                by_currency.setdefault(currency, []).append(txid)
        self.handled += len(datagrams)
        if by_currency:
            on_database(lambda: self._record_notified(by_currency, started))

    def _record_notified(self, by_currency, started) -> None:
        ids = [pk for code in by_currency for pk in self.by_currency[code]]
        for wallet in Wallet.objects.filter(pk__in=ids, enabled=True).select_related("currency"):
            txids = by_currency[wallet.currency.code]
            try:
                summary = record_transactions(wallet, txids, self.backend(wallet))
                self.out(
                    f"{wallet.name}: walletnotify, {len(txids)} transaction(s): {summary} "
                    f"({(time.perf_counter() - started) * 1000:.0f} ms)"
                )
            except Exception as exc:  # noqa: BLE001 - one wallet's failure is recorded
                if not isinstance(exc, BackendError):
                    log.exception("listener: %s failed", wallet.name)
                record_poll_error(wallet, exc)

    def backend(self, wallet: Wallet):
        cached = self.backends.get(wallet.pk)
        if cached is None or cached.wallet.backend_settings != wallet.backend_settings:
            cached = self.backends[wallet.pk] = wallet.get_backend()
        cached.wallet = wallet
        return cached

    def poll_all(self, reason: str, urls=None) -> None:
        on_database(lambda: self._poll_all(reason, urls))

    def _poll_all(self, reason: str, urls) -> None:
        ids = [
            pk for url, group in self.groups.items() if urls is None or url in urls for pk in group
        ]
        for wallet in Wallet.objects.filter(pk__in=ids, enabled=True).select_related("currency"):
            try:
                self.out(f"{wallet.name}: {reason}: {poll_wallet(wallet, self.backend(wallet))}")
            except Exception as exc:  # noqa: BLE001
                if not isinstance(exc, BackendError):
                    log.exception("listener: %s failed", wallet.name)
                record_poll_error(wallet, exc)
