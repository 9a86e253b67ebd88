"""The JSON-RPC transport to bitcoind with python-bitcoinrpc.

Traps of AuthServiceProxy this module works around:
- it keeps one HTTP connection forever and never reconnects: after a node restart or
  ~30 s idle every call fails (BrokenPipe, then CannotSendRequest). We reconnect once
  on those errors for read-only calls, and use a fresh connection for every send;
- it is not thread-safe: one backend instance per unit of work, never shared;
- it encodes Decimal as float (EncodeDecimal): we send amounts as exact decimal strings,
  which bitcoind accepts, and refuse floats and Decimals at this boundary;
- `batch_` raises on the first failing item: our batch keeps per-item errors;
- its `_get_response` serializes every reply back to JSON for a debug log line, even with
  debug logging off: for a listreceivedbyaddress of 100,000 rows that cost more than reading
  the reply. _Proxy reads each reply once and logs it only when debug logging is on.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
from decimal import Decimal
from urllib.parse import unquote, urlsplit

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException
from django.conf import settings

from cryptoadmin.masking import mask_url

from ..money import AmountError
from .base import (
    Backend,
    BackendError,
    BadReply,
    InsufficientFunds,
    InvalidAddress,
    NodeUnreachable,
    NotSent,
    OutcomeUnknown,
    TransactionNotFound,
    checked_node_url,
    seconds_left,
)

# A stale keep-alive connection: safe to reconnect and repeat a read-only call.
_STALE = (
    BrokenPipeError,
    ConnectionResetError,
    http.client.CannotSendRequest,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    http.client.ResponseNotReady,
)
_WALLET_TX_NOT_FOUND = "Invalid or non-wallet transaction id"

# python-bitcoinrpc's own logger: whoever turns its debug log on still sees every reply.
_rpc_log = logging.getLogger("BitcoinRPC")


class _Proxy(AuthServiceProxy):
    """AuthServiceProxy whose replies are parsed once and never serialized again (the
    library's `_get_response` re-encodes every result for log.debug, whatever the level)."""

    def __init__(self, service_url, *args, **kwargs):
        super().__init__(service_url, *args, **kwargs)
        # The library sends the user and password as written in the URL; a password holding
        # '/', '?', '#' or '@' can only be written percent-encoded, so it is decoded here.
        parts = urlsplit(service_url)
        if "%" in (parts.username or "") + (parts.password or ""):
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            self._AuthServiceProxy__auth_header = b"Basic " + base64.b64encode(pair.encode())

    def __getattr__(self, name):
        # The library builds each method's callable as an AuthServiceProxy by name; ours must
        # be a _Proxy too, or the call would read its reply with the library's method.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        service = self._AuthServiceProxy__service_name
        return _Proxy(
            self._AuthServiceProxy__service_url,
            f"{service}.{name}" if service is not None else name,
            self._AuthServiceProxy__timeout,
            self._AuthServiceProxy__conn,
        )

    def _get_response(self):
        # The library's checks and errors, in its order: no response, a content type other
        # than JSON (-342), then the body parsed with every JSON fraction as a Decimal.
        http_response = self._AuthServiceProxy__conn.getresponse()
        if http_response is None:
            raise JSONRPCException({"code": -342, "message": "missing HTTP response from server"})
        if http_response.getheader("Content-Type") != "application/json":
            raise JSONRPCException(
                {
                    "code": -342,
                    "message": f"non-JSON HTTP response with '{http_response.status} "
                    f"{http_response.reason}' from server",
                }
            )
        body = http_response.read().decode("utf8")
        response = json.loads(body, parse_float=Decimal)
        # As with the library: a bare number, true/false or null is a TypeError here, which
        # _translate reports as BadReply.
        if not isinstance(response, (dict, list, str)):
            raise TypeError(f"the reply is a bare {type(response).__name__}")
        if _rpc_log.isEnabledFor(logging.DEBUG):
            _rpc_log.debug("<-- %s", body)
        return response


def _cookie_url(url, path):
    from ..node_address import CookieUnreadable, with_cookie

    try:
        return with_cookie(url, path)
    except CookieUnreadable as exc:
        # No call was made: a stopped node removes its cookie file.
        raise NotSent(f"{mask_url(url)}: {exc}") from None


class BitcoindRpc(Backend):
    """The node's URL, its connections and the calls over them; BitcoindBackend builds on it."""

    def __init__(self, wallet, timeout: int | None = None):
        super().__init__(wallet)
        node = wallet.backend_settings or {}
        url = node.get("url")
        if not url:
            raise BackendError(f"wallet {wallet.name} has no 'url' in its backend settings")
        if node.get("cookie_file"):
            url = _cookie_url(url, node["cookie_file"])
        self.url = checked_node_url(url)
        self.timeout = timeout or settings.NODE_RPC_TIMEOUT
        self._proxy = None

    # -- transport ---------------------------------------------------------------------

    def _new_proxy(self, timeout: float | None = None):
        return _Proxy(checked_node_url(self.url), timeout=timeout or self.timeout)

    def _proxy_for_reads(self):
        if self._proxy is None:
            self._proxy = self._new_proxy()
        return self._proxy

    def _translate(self, exc: Exception, method: str, state_changing: bool) -> BackendError:
        where = f"{method} on {mask_url(self.url)}"
        if isinstance(exc, JSONRPCException):
            err = exc.error if isinstance(exc.error, dict) else {"message": str(exc.error)}
            code, message = err.get("code"), err.get("message", "")
            if code == -5 and _WALLET_TX_NOT_FOUND in message:
                return TransactionNotFound(f"{where}: {message}", code=code)
            if code == -5:
                return InvalidAddress(f"{where}: {message}", code=code)
            if code == -6:
                return InsufficientFunds(f"{where}: {message}", code=code)
            if code == -28:  # warming up: it refused the call
                return NotSent(f"{where}: node is starting: {message}", code=code)
            if code == -342 and "401" in message:
                return NotSent(
                    f"{where}: authentication failed (check rpc user/password)", code=code
                )
            if code in (-342, -343):
                return BadReply(f"{where}: {message}", code=code)
            return BackendError(f"{where}: node error {code}: {message}", code=code)
        if isinstance(exc, ConnectionRefusedError) or (
            isinstance(exc, OSError) and exc.errno in (111, 113, 101)
        ):
            return NotSent(f"{where}: node unreachable ({exc})")
        if isinstance(exc, socket.gaierror):
            return NotSent(f"{where}: cannot resolve node host ({exc})")
        if isinstance(exc, (ValueError, TypeError, KeyError)):
            return BadReply(f"{where}: unreadable reply ({exc})")
        if state_changing:
            return OutcomeUnknown(
                f"{where}: connection lost after sending, outcome unknown ({exc!r})"
            )
        return NodeUnreachable(f"{where}: {exc!r}")

    def call(self, method: str, *params):
        """A read-only call: reconnects once if the kept connection went stale."""
        _refuse_inexact(params)
        for attempt in (1, 2):
            try:
                return getattr(self._proxy_for_reads(), method)(*params)
            except _STALE as exc:
                self._proxy = None
                if attempt == 2:
                    raise self._translate(exc, method, state_changing=False) from exc
            except Exception as exc:
                if not isinstance(exc, JSONRPCException):
                    self._proxy = None
                raise self._translate(exc, method, state_changing=False) from exc

    def call_once(self, method: str, *params, timeout: float | None = None):
        """A state-changing call: fresh connection, never repeated."""
        _refuse_inexact(params)
        proxy = self._new_proxy(timeout)
        try:
            return getattr(proxy, method)(*params)
        except Exception as exc:
            raise self._translate(exc, method, state_changing=True) from exc

    def batch(self, calls: list[tuple]) -> list:
        """Several read-only calls in one round trip; each result is a value or a BackendError."""
        if not calls:
            return []
        for call in calls:
            _refuse_inexact(call[1:])
        body = json.dumps(
            [
                {"jsonrpc": "1.0", "id": i, "method": c[0], "params": list(c[1:])}
                for i, c in enumerate(calls)
            ]
        )
        replies = self._post_batch(body)
        if not isinstance(replies, list):
            raise BadReply(f"batch of {len(calls)} got {type(replies).__name__} reply")
        return self._paired(calls, replies)

    def _post_batch(self, body: str):
        """The batch's body posted on the kept connection, reconnecting once if it went stale."""
        for attempt in (1, 2):
            proxy = self._proxy_for_reads()
            try:
                conn = proxy._AuthServiceProxy__conn
                conn.request(
                    "POST",
                    proxy._AuthServiceProxy__url.path or "/",
                    body,
                    {
                        "Host": proxy._AuthServiceProxy__url.hostname,
                        "Authorization": proxy._AuthServiceProxy__auth_header,
                        "Content-type": "application/json",
                    },
                )
                return proxy._get_response()
            except _STALE as exc:
                self._proxy = None
                if attempt == 2:
                    raise self._translate(exc, "batch", state_changing=False) from exc
            except Exception as exc:
                self._proxy = None
                raise self._translate(exc, "batch", state_changing=False) from exc

    def _paired(self, calls: list[tuple], replies: list) -> list:
        # Each request must be answered exactly once under its own id. An answer under an
        # unknown id is ignored; a request answered twice or never gets a BadReply in place,
        # so one strange answer never lands on another request's result.
        answered: dict[int, list] = {}
        strays = 0
        for reply in replies:
            index = reply.get("id") if isinstance(reply, dict) else None
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(calls):
                answered.setdefault(index, []).append(reply)
            else:
                strays += 1
        out: list = [None] * len(calls)
        for index, call in enumerate(calls):
            got = answered.get(index, [])
            if len(got) != 1:
                out[index] = BadReply(
                    f"batch: {call[0]} request {index} answered {len(got)} times "
                    f"({strays} answer(s) under unknown ids)"
                )
            elif got[0].get("error") is not None:
                out[index] = self._translate(JSONRPCException(got[0]["error"]), call[0], False)
            elif "result" not in got[0]:
                out[index] = BadReply(f"batch: {call[0]} answer {index} has no result")
            else:
                out[index] = got[0]["result"]
        return out

    def _call_by(self, deadline, method, *params):
        """A call that changes nothing on the network, ended before `deadline` (or not started:
        NotSent); without a deadline, a read-only call."""
        if deadline is None:
            return self.call(method, *params)
        timeout = seconds_left(deadline, self.timeout)
        _refuse_inexact(params)
        try:
            return getattr(self._new_proxy(timeout), method)(*params)
        except Exception as exc:
            raise self._translate(exc, method, state_changing=False) from exc


def _refuse_inexact(params):
    """No float or Decimal may reach python-bitcoinrpc's float encoder."""
    for p in params:
        if isinstance(p, (float, Decimal)):
            raise AmountError(
                f"refusing {type(p).__name__} {p!r} in an RPC call: amounts go as exact strings"
            )
        if isinstance(p, dict):
            _refuse_inexact(p.values())
        elif isinstance(p, (list, tuple)):
            _refuse_inexact(p)
