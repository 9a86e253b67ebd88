"""bitcoind over JSON-RPC with python-bitcoinrpc.

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
import re
import socket
from decimal import Decimal
from urllib.parse import unquote, urlsplit

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException
from django.conf import settings

from cryptoadmin import faults
from cryptoadmin.masking import mask_url

from .. import rawtx
from ..money import AmountError, format_units, to_units
from ..txids import TXID_RE as HASH_RE  # a block hash has the shape of a txid
from ..txids import is_txid
from .base import (
    Backend,
    BackendError,
    BadReply,
    ChainTip,
    Conflict,
    FeeTooHigh,
    InsufficientFunds,
    InvalidAddress,
    NodeUnreachable,
    NotSent,
    OutcomeUnknown,
    ReceivedByAddress,
    ReceivedEntry,
    Refused,
    SignedTx,
    SinceBlock,
    TransactionNotFound,
    TxInfo,
    TxOutput,
    check_txid,
    checked_node_url,
    seconds_left,
)

log = logging.getLogger(__name__)

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
# sendrawtransaction's answers for bytes the node already has: in its mempool (-27 on every
# version), or in its chain (-27 "already in block chain"; Bitcoin SV: -26 "257:
# txn-already-known").
_ALREADY_HAVE = ("already in the mempool", "already in block chain", "txn-already-known")
# The signing call's name per node URL, learnt from the node's first answer: Bitcoin Core
# >= 0.17 has signrawtransactionwithwallet; older nodes (this Bitcoin SV) only signrawtransaction.
_SIGN_METHOD: dict[str, str] = {}


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


class BitcoindBackend(Backend):
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
                replies = proxy._get_response()
                break
            except _STALE as exc:
                self._proxy = None
                if attempt == 2:
                    raise self._translate(exc, "batch", state_changing=False) from exc
            except Exception as exc:
                self._proxy = None
                raise self._translate(exc, "batch", state_changing=False) from exc
        if not isinstance(replies, list):
            raise BadReply(f"batch of {len(calls)} got {type(replies).__name__} reply")
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

    # -- conversions ---------------------------------------------------------------------

    def units(self, value) -> int:
        if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
            raise BadReply(f"amount {value!r} from node is not a JSON number")
        try:
            return to_units(value, self.decimals)
        except AmountError as exc:
            raise BadReply(f"amount from node: {exc}") from None

    def amount_str(self, units: int) -> str:
        if not isinstance(units, int) or isinstance(units, bool):
            raise AmountError(
                f"refusing {type(units).__name__} amount {units!r}: base units must be int"
            )
        if units <= 0:
            raise AmountError(f"amount must be positive, got {units}")
        return format_units(units, self.decimals)

    def parse_tx(self, raw, txid: str | None = None) -> TxInfo:
        """A gettransaction-shaped reply as TxInfo; `txid`, when given, is the one we asked for."""
        if not isinstance(raw, dict):
            raise BadReply(
                f"gettransaction {txid or ''} reply is {type(raw).__name__}, not an object"
            )
        got = check_txid(raw.get("txid"), "gettransaction reply")
        if txid is not None and got != txid:
            raise BadReply(f"gettransaction {txid} answered for another txid {got}")
        try:
            confirmations = raw["confirmations"]
            if not isinstance(confirmations, int) or isinstance(confirmations, bool):
                raise TypeError(f"confirmations {confirmations!r} is not an integer")
            details = raw.get("details", [])
            if not isinstance(details, list) or not all(isinstance(d, dict) for d in details):
                raise TypeError("details is not a list of objects")
            outputs = []
            for d in details:
                outputs.append(
                    TxOutput(
                        address=d.get("address", ""),
                        category=str(d["category"]),
                        amount=abs(self.units(d["amount"])),
                        vout=d.get("vout"),
                    )
                )
            fee = raw.get("fee")
            return TxInfo(
                txid=got,
                confirmations=confirmations,
                fee=abs(self.units(fee)) if fee is not None else None,
                outputs=tuple(outputs),
                blockhash=raw.get("blockhash"),
                comment=raw.get("comment", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadReply(f"gettransaction {got} reply lacks {exc}") from None

    # -- the interface ---------------------------------------------------------------------

    def new_address(self, label: str = "") -> str:
        # No label on the node: on nodes that still have accounts (this regtest node among
        # them) a label is an account, and sendmany "" spends only the default account, so
        # coins received at labelled addresses could never be paid out. The books keep the label.
        return self.call_once("getnewaddress")

    def validate_address(self, address: str) -> bool:
        reply = self.call("validateaddress", address)
        return bool(reply.get("isvalid"))

    def get_balance(self, minconf: int = 0) -> int:
        return self.units(self.call("getbalance", "*", minconf))

    def get_transaction(self, txid: str) -> TxInfo:
        return self.parse_tx(self.call("gettransaction", txid), txid)

    def get_transactions(self, txids: list[str]) -> dict:
        result = {}
        chunk = 2000  # keeps one request body a few hundred KB
        for start in range(0, len(txids), chunk):
            part = txids[start : start + chunk]
            self._parse_replies(part, self.batch([("gettransaction", t) for t in part]), result)
        return result

    def _parse_replies(self, txids: list[str], replies: list, result: dict) -> None:
        """Each txid's gettransaction reply into `result`: a TxInfo, or its error in place."""
        for txid, reply in zip(txids, replies, strict=True):
            if isinstance(reply, BackendError):
                result[txid] = reply
                continue
            try:
                result[txid] = self.parse_tx(reply, txid)
            except BadReply as exc:
                result[txid] = exc

    def list_since_block(self, blockhash: str | None, target_confirmations: int = 1) -> SinceBlock:
        return self._parse_since(
            self.call("listsinceblock", blockhash or "", max(1, target_confirmations))
        )

    def _parse_since(self, reply) -> SinceBlock:
        """A reply we cannot read as a whole (not an object, no transactions list, an entry
        with no txid, no lastblock) is BadReply for the wallet; an entry of a known txid that
        is malformed is a BadReply in place for that txid (SinceBlock.errors)."""
        if not isinstance(reply, dict) or not isinstance(reply.get("transactions"), list):
            raise BadReply(
                "listsinceblock reply is not an object with a transactions list: "
                f"{str(reply)[:200]}"
            )
        lastblock = reply.get("lastblock")
        if not isinstance(lastblock, str) or not re.fullmatch(r"[0-9a-f]{64}", lastblock):
            raise BadReply(f"listsinceblock reply has no usable lastblock: {str(lastblock)[:80]!r}")
        grouped: dict[str, dict] = {}
        for entry in reply["transactions"]:
            if not isinstance(entry, dict):
                raise BadReply(f"listsinceblock entry is {type(entry).__name__}, not an object")
            txid = check_txid(entry.get("txid"), "listsinceblock entry")
            item = grouped.setdefault(
                txid,
                {
                    "txid": txid,
                    "confirmations": entry.get("confirmations"),
                    "blockhash": entry.get("blockhash"),
                    "details": [],
                    "comment": entry.get("comment", ""),
                },
            )
            if entry.get("fee") is not None:
                item["fee"] = entry["fee"]
            item["details"].append(entry)
        transactions, errors = [], {}
        for txid, raw in grouped.items():
            try:
                transactions.append(self.parse_tx(raw, txid))
            except BadReply as exc:
                errors[txid] = exc
        # A target deeper than the chain yields the null hash: "from the start" next time.
        return SinceBlock(
            tuple(transactions), "" if not lastblock.strip("0") else lastblock, errors
        )

    def chain_tip(self) -> ChainTip:
        # getblockchaininfo reads height and hash under one lock: never a mismatched pair.
        # The newest wallet transaction in the same round trip tells a new one under an
        # unchanged tip (being mined does not reorder the list). listtransactions walks the
        # wallet's ordered list from its newest end: its cost does not grow with the wallet's
        # history, where getwalletinfo sums balances over every transaction.
        reply, newest = self.batch(
            [("getblockchaininfo",), ("listtransactions", "*", NEWEST_ENTRIES, 0, True)]
        )
        if isinstance(reply, BackendError):
            raise reply
        if not isinstance(reply, dict):
            raise BadReply(f"getblockchaininfo reply is {type(reply).__name__}, not an object")
        height, best = reply.get("blocks"), reply.get("bestblockhash")
        if not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise BadReply(f"getblockchaininfo: blocks {str(height)[:40]!r} is not a height")
        return ChainTip(
            height, _block_hash(best, "getblockchaininfo bestblockhash"), _newest_txid(newest)
        )

    def since_tip(self, blockhash: str, heights: list[int]) -> tuple[SinceBlock, dict, str | None]:
        replies = self.batch(
            [("listsinceblock", blockhash or "", 1)]
            + [("getblockhash", h) for h in heights]
            + [("getbestblockhash",)]
        )
        if isinstance(replies[0], BackendError):
            raise replies[0]
        since = self._parse_since(replies[0])
        return since, self._hashes(heights, replies[1:-1]), _tip_after(replies[-1])

    def block_hashes(self, heights: list[int]) -> dict:
        return self._hashes(heights, self.batch([("getblockhash", h) for h in heights]))

    def _hashes(self, heights, replies) -> dict:
        hashes = {}
        for height, reply in zip(heights, replies, strict=True):
            if isinstance(reply, BackendError):
                if reply.code == -8:  # "Block height out of range": the chain got shorter
                    hashes[height] = None
                    continue
                raise reply
            hashes[height] = _block_hash(reply, f"getblockhash {height}")
        return hashes

    def get_transactions_at_tip(self, txids: list[str]) -> tuple[dict, str | None]:
        result, tip = {}, None
        chunk = 2000  # keeps one request body a few hundred KB
        starts = list(range(0, len(txids), chunk)) or [0]
        for start in starts:
            part = txids[start : start + chunk]
            calls = [("gettransaction", t) for t in part]
            if start == starts[-1]:
                calls.append(("getbestblockhash",))
            replies = self.batch(calls)
            # The last chunk's extra reply (the tip) is read below, not paired with a txid.
            self._parse_replies(part, replies[: len(part)], result)
            if start == starts[-1]:
                tip = _tip_after(replies[-1])
        return result, tip

    def send_many(
        self,
        outputs: dict[str, int],
        comment: str,
        *,
        nonce: str = "",
        deadline: float | None = None,
    ) -> str:
        if not outputs:
            raise AmountError("send_many needs at least one output")
        amounts = {address: self.amount_str(units) for address, units in outputs.items()}
        self._gather_accounts()
        # Measured after gathering: sendmany itself must answer, or be given up, within the lease.
        timeout = seconds_left(deadline, self.timeout)
        txid = self.call_once("sendmany", "", amounts, 1, comment, timeout=timeout)
        if not isinstance(txid, str) or len(txid) != 64:
            raise OutcomeUnknown(f"sendmany returned {txid!r}, not a txid")
        return txid

    def _gather_accounts(self):
        """On nodes that still have accounts, sendmany "" may spend only the default account's
        share, so coins that reached labelled addresses (an imported legacy wallet's) would be
        booked on a user yet refused with 'Account has insufficient funds'. `move` is the node's
        own bookkeeping: no coin moves and nothing is broadcast, so any failure here is NotSent."""
        try:
            accounts = self.call("listaccounts", 1)
        except BackendError as exc:
            if exc.code in (-32601, -32):  # no accounts on this node (removed, or deprecated)
                return
            raise NotSent(f"before sendmany: {exc}", code=exc.code) from exc
        if not isinstance(accounts, dict):
            raise NotSent(
                f"before sendmany: listaccounts returned {type(accounts).__name__}, not an object"
            )
        try:
            for name, balance in accounts.items():
                units = self.units(balance)
                if name and units > 0:
                    self.call_once("move", name, "", self.amount_str(units))
        except BackendError as exc:
            raise NotSent(
                f"before sendmany, moving accounts to the default one: {exc}", code=exc.code
            ) from exc

    # -- sign first, send after -------------------------------------------------------------

    signs_first = True

    def build_signed(
        self,
        outputs,
        *,
        fee_rate=None,
        confirmation_target=None,
        max_fee=None,
        inputs=(),
        deadline=None,
    ):
        if not outputs:
            raise AmountError("build_signed needs at least one output")
        amounts = {address: self.amount_str(units) for address, units in outputs.items()}

        def call(method, *params):
            return self._call_by(deadline, method, *params)

        # No `move` first, unlike sendmany: fundrawtransaction picks from every coin of the
        # wallet, whatever account a node that still has accounts put it in. It keeps the
        # coins given here (locked or not) and adds what is missing.
        try:
            raw = call("createrawtransaction", [_coin(c) for c in inputs], amounts)
            # Coins are locked by the caller once the signed transaction is recorded with them
            # (lock_coins): a lock taken here would outlive a process killed before that
            # record, until the node restarts. Only one broadcast of a wallet is open at a
            # time, so no other broadcast of ours picks these coins meanwhile.
            options = {"lockUnspents": False}
            if fee_rate is not None:
                options["feeRate"] = format_units(fee_rate, self.decimals)
            elif confirmation_target is not None:
                options["conf_target"] = confirmation_target
            funded = call("fundrawtransaction", raw, options)
        except BackendError as exc:
            # Bitcoin Core answers a dust output, as sendmany did with -6, "Transaction amount
            # too small": an output refused, nothing locked.
            if exc.code == -4 and ("nsufficient funds" in str(exc) or "too small" in str(exc)):
                raise InsufficientFunds(str(exc), code=exc.code) from exc
            raise
        if not isinstance(funded, dict) or not isinstance(funded.get("hex"), str):
            raise BadReply(
                f"fundrawtransaction reply is not an object with hex: {str(funded)[:200]}"
            )
        fee = self.units(funded.get("fee"))
        faults.point("broadcast.after_fund")  # inside the build: nothing signed or recorded
        decoded = call("decoderawtransaction", funded["hex"])
        spent = tuple(f"{v['txid']}:{v['vout']}" for v in decoded.get("vin", []))
        if not set(inputs) <= set(spent):
            raise BadReply(f"fundrawtransaction dropped coins it was given: {sorted(inputs)}")
        if max_fee is not None and fee > max_fee:
            raise FeeTooHigh(
                f"the fee would be {format_units(fee, self.decimals)}, above the cap of "
                f"{format_units(max_fee, self.decimals)}",
                fee=fee,
                cap=max_fee,
            )
        signed = self._sign(funded["hex"], deadline)
        if not isinstance(signed, dict) or not signed.get("complete") or not signed.get("hex"):
            raise Refused(f"the node could not sign the transaction: {str(signed)[:300]}")
        txid = check_txid(call("decoderawtransaction", signed["hex"]).get("txid"), "decoded tx")
        return SignedTx(raw=signed["hex"], txid=txid, fee=fee, inputs=spent)

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

    def _sign(self, raw: str, deadline=None):
        method = _SIGN_METHOD.get(self.url, "signrawtransactionwithwallet")
        try:
            return self._call_by(deadline, method, raw)
        except BackendError as exc:
            if exc.code != -32601 or method == "signrawtransaction":
                raise
        _SIGN_METHOD[self.url] = "signrawtransaction"
        return self._call_by(deadline, "signrawtransaction", raw)

    def send_raw(self, raw: str, txid: str, *, deadline: float | None = None) -> str:
        timeout = seconds_left(deadline, self.timeout)
        try:
            got = self.call_once("sendrawtransaction", raw, timeout=timeout)
        except BackendError as exc:
            message = str(exc)
            if exc.code in (-27, -26) and any(m in message for m in _ALREADY_HAVE):
                return txid
            if exc.code == -25 or (exc.code == -26 and "conflict" in message):
                raise Conflict(
                    f"its inputs are spent by another transaction or missing: {message}",
                    code=exc.code,
                ) from exc
            if exc.code in (-26, -22):  # rejected by policy or unreadable: never accepted
                reason = Refused.DUST if "dust" in message else Refused.POLICY
                raise Refused(message, code=exc.code, reason=reason) from exc
            raise
        if got != txid:
            raise OutcomeUnknown(f"sendrawtransaction answered {got!r}, not {txid}")
        return txid

    def known_transaction(self, txid: str) -> int | None:
        try:
            return self.get_transaction(txid).confirmations
        except TransactionNotFound:
            pass
        try:
            self.call("getmempoolentry", txid)
            return 0
        except BackendError as exc:
            if exc.code == -5:
                return None
            raise

    def lock_coins(self, inputs, lock: bool = True) -> None:
        coins = [_coin(i) for i in inputs]
        if coins:
            # lockunspent's first argument is "unlock".
            self.call("lockunspent", not lock, coins)

    def locked_coins(self) -> set[str]:
        return {f"{c['txid']}:{c['vout']}" for c in self.call("listlockunspent")}

    def find_spender(self, inputs, exclude: str = "") -> str:
        for txid, _ in self._spenders(inputs, exclude, 200):
            return txid
        return ""

    def _spenders(self, inputs, exclude: str, count: int):
        """(txid, confirmations) of the wallet's recent sends other than `exclude` spending
        one of `inputs`."""
        wanted = set(inputs)
        txids = []
        for entry in self.list_transactions(count):
            t = entry.get("txid")
            if t and t != exclude and t not in txids and entry.get("category") == "send":
                txids.append(t)
        for t in txids:
            try:
                tx = self.call("gettransaction", t)
                vin = self.call("decoderawtransaction", tx.get("hex")).get("vin", [])
            except BackendError:
                continue
            if any(f"{v.get('txid')}:{v.get('vout')}" in wanted for v in vin):
                yield t, int(tx.get("confirmations", 0))

    def unspent_coins(self, coins) -> set[str]:
        coins = list(coins)
        replies = self.batch([("gettxout", *_coin(c).values(), True) for c in coins])
        out = set()
        for coin, reply in zip(coins, replies, strict=True):
            if isinstance(reply, BackendError):
                raise reply
            if reply is not None:
                out.add(coin)
        return out

    def transaction_coins(self, txid: str) -> set[str]:
        raw = self.call("gettransaction", txid).get("hex")
        try:
            return rawtx.coins(raw)
        except (rawtx.RawTxError, ValueError, TypeError):
            raise BadReply(f"gettransaction {txid}: its hex is not a transaction") from None

    def spender_confirmations(self, coins, exclude: str = "") -> int | None:
        depths = [c for _, c in self._spenders(coins, exclude, 1000)]
        return max(depths) if depths else None

    def decode_outputs(self, raw: str) -> dict[str, int]:
        paid: dict[str, int] = {}
        for out in self.call("decoderawtransaction", raw).get("vout", []):
            for address in out.get("scriptPubKey", {}).get("addresses", [])[:1]:
                paid[address] = paid.get(address, 0) + self.units(out["value"])
        return paid

    def spends_own_coins(self, txid: str) -> bool:
        # bitcoind lists "send" details only for transactions whose inputs its wallet debited.
        return any(out.category == "send" for out in self.get_transaction(txid).outputs)

    def list_transactions(self, count: int = 1000, skip: int = 0) -> list[dict]:
        return self.call("listtransactions", "*", count, skip, True)

    def iter_received(self, page_size: int = 1000, progress=None):
        # Pages overlap so a transaction arriving mid-scan (which shifts listtransactions'
        # window) cannot push an entry past a page boundary unseen; duplicates are harmless.
        overlap = max(1, page_size // 10)
        skip = 0
        while True:
            entries = self.list_transactions(page_size, skip)
            if not isinstance(entries, list):
                raise BadReply(f"listtransactions reply is {type(entries).__name__}, not a list")
            if progress:
                progress(len(entries) if skip == 0 else len(entries) - overlap)
            for e in entries:
                if not isinstance(e, dict):
                    raise BadReply(f"listtransactions entry is {type(e).__name__}, not an object")
                if e.get("category") == "receive" and e.get("address"):
                    txid = check_txid(e.get("txid"), "listtransactions entry")
                    yield ReceivedEntry(
                        txid,
                        e["address"],
                        self.units(e.get("amount")),
                        int(e.get("confirmations", 0)),
                    )
            # Only a short page means the end: a page of sends alone does not.
            if len(entries) < page_size:
                return
            skip += page_size - overlap

    def history_size(self) -> int | None:
        return int(self.call("getwalletinfo").get("txcount", 0)) or None

    def find_by_comment(self, comment: str) -> list[str]:
        found, skip, page = [], 0, 1000
        while True:
            entries = self.list_transactions(page, skip)
            found.extend(
                e["txid"] for e in entries if e.get("comment") == comment and e["txid"] not in found
            )
            if len(entries) < page:
                return found
            skip += page

    def list_received_by_address(self, minconf: int = 0) -> list[ReceivedByAddress]:
        rows = self.call("listreceivedbyaddress", minconf, False, True)
        return [
            ReceivedByAddress(
                r["address"],
                self.units(r["amount"]),
                int(r["confirmations"]),
                tuple(r.get("txids", ())),
            )
            for r in rows
        ]

    def block_height(self) -> int:
        return int(self.call("getblockcount"))


NEWEST_ENTRIES = 5  # listtransactions entries read with the tip (a "move" entry has no txid)


def _newest_txid(entries) -> str | None:
    """The txid of the newest entry that has one; None when unknown (an error, an empty wallet):
    the poller then follows the tip alone (the listener still sees unconfirmed deposits)."""
    if not isinstance(entries, list):
        log.warning("listtransactions gave no list: %.80r", entries)
        return None
    for entry in reversed(entries):  # oldest first
        txid = entry.get("txid") if isinstance(entry, dict) else None
        if is_txid(txid):
            return txid
    return None


def _block_hash(value, what: str) -> str:
    if not isinstance(value, str) or not HASH_RE.match(value):
        raise BadReply(f"{what}: {str(value)[:80]!r} is not a block hash")
    return value


def _tip_after(reply) -> str | None:
    """The trailing getbestblockhash of a batch; None if unreadable (the caller then trusts
    no height derived in that round trip)."""
    if isinstance(reply, str) and HASH_RE.match(reply):
        return reply
    return None


def _coin(text: str) -> dict:
    txid, _, vout = text.partition(":")
    return {"txid": txid, "vout": int(vout)}


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
