"""block.io's hosted wallet API (v2) over HTTP with requests.

Protocol, as documented: `GET <base>/<method>/?api_key=KEY&...`, answers in the envelope
{"status": "success"|"fail", "data": {...}} with data.error_message on "fail", amounts as
decimal strings, HTTP 429 when rate-limited.

Decisions:
- withdraw is the one state-changing call: a single POST (the PIN goes in the body, never
  in a URL), never retried by this module, with the broadcast's `nonce` (random, committed on
  the broadcast before the call). block.io rejects "withdrawal requests that provide duplicate
  nonces less than 1 hour apart": that refusal is AlreadySent (the earlier request went
  through), so re-issuing a lost withdraw within the hour pays at most once.
- Connect-phase failures (connection refused, connect timeout) prove nothing was sent:
  NotSent. Once connected, a read timeout or a dropped connection is OutcomeUnknown. The
  withdraw's timeouts are cut to the caller's deadline (the send's lease).
- Reads are retried with exponential backoff, and 429 honours Retry-After within a bound.
- get_transaction: get_raw_transaction gives confirmations and the raw hex; the txid is
  checked against the hash of the serialization without witness data (BIP 144), the
  outputs are decoded here (P2PKH/P2SH, P2WPKH/P2WSH) and classified against the account's
  own addresses (get_my_addresses), so deposits credit the same way as with bitcoind.
- spends_own_coins: every input's previous output (get_raw_transaction of its txid) pays one
  of the account's addresses: matching outputs alone could be anyone's payment.
- block.io has no transaction comments: find_by_comment raises; find_sent lists the sent
  transactions (get_transactions type=sent) since a time whose outputs match.
- An output of a transaction we sent that pays one of our own addresses (a withdrawal to
  another user's deposit address) is a payment as well as a receipt: find_sent counts it,
  and get_transaction lists it as "send" too once the transaction is known to be ours.
- Addresses are validated locally: base58check with the network's version bytes.
- The API key and PIN never appear in an exception, a log line or the admin.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import requests

from .. import rawtx
from ..money import AmountError, format_units, to_units
from ..txids import is_txid
from .base import (
    AlreadySent,
    Backend,
    BackendError,
    BadReply,
    InsufficientFunds,
    InvalidAddress,
    NodeUnreachable,
    NotSent,
    OutcomeUnknown,
    ReceivedByAddress,
    ReceivedEntry,
    SinceBlock,
    TransactionNotFound,
    TxInfo,
    TxOutput,
    check_txid,
    checked_node_url,
    seconds_left,
)

log = logging.getLogger(__name__)
DEFAULT_BASE_URL = "https://block.io/api/v2/"
# (p2pkh, p2sh) version bytes per block.io network name.
# bech32 human-readable parts of segwit addresses per network (Dogecoin has none).
SEGWIT_HRP = {"BTC": "bc", "BTCTEST": "tb", "LTC": "ltc", "LTCTEST": "tltc"}
ADDRESS_VERSIONS = {
    "BTC": (0x00, 0x05),
    "BTCTEST": (0x6F, 0xC4),
    "LTC": (0x30, 0x32),
    "LTCTEST": (0x6F, 0x3A),
    "DOGE": (0x1E, 0x16),
    "DOGETEST": (0x71, 0xC4),
}
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class BlockIoBackend(Backend):
    supports_nonce = True
    keeps_comments = False
    max_attempts = 3
    backoff = 0.2  # seconds, doubled each retry
    max_retry_after = 5.0

    def __init__(
        self, wallet, timeout: float | None = None, session: requests.Session | None = None
    ):
        super().__init__(wallet, timeout)
        cfg = wallet.backend_settings or {}
        self.api_key = cfg.get("api_key") or ""
        self.pin = cfg.get("pin") or ""
        if not self.api_key:
            raise BackendError(f"wallet {wallet.name} has no 'api_key' in its backend settings")
        self.base_url = checked_node_url(
            (cfg.get("base_url") or DEFAULT_BASE_URL).rstrip("/") + "/"
        )
        self.network = cfg.get("network") or "BTCTEST"
        self.session = session or requests.Session()
        self._mine: set[str] | None = None
        self._fees: dict[str, int] = {}
        # Txids this backend has seen spend the wallet's coins (its own sends).
        self._ours: set[str] = set()

    # -- transport ---------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in (self.api_key, self.pin):
            if secret:
                text = text.replace(secret, "•••")
        return text

    def _envelope(self, method: str, response) -> dict:
        try:
            body = response.json()
        except ValueError:
            raise BadReply(
                f"block.io {method}: reply is not JSON (HTTP {response.status_code})"
            ) from None
        if (
            not isinstance(body, dict)
            or body.get("status") not in ("success", "fail")
            or not isinstance(body.get("data"), dict)
        ):
            raise BadReply(f"block.io {method}: reply is not a block.io envelope")
        if body["status"] == "fail":
            message = self._scrub(str(body["data"].get("error_message", "no error message")))
            lowered = message.lower()
            if "nonce" in lowered and ("duplicate" in lowered or "already" in lowered):
                raise AlreadySent(f"block.io {method}: {message}")
            if "insufficient" in lowered or "not enough" in lowered:
                raise InsufficientFunds(f"block.io {method}: {message}")
            if "address" in lowered and "invalid" in lowered:
                raise InvalidAddress(f"block.io {method}: {message}")
            if "transaction" in lowered and (
                "not found" in lowered or "unknown" in lowered or "invalid" in lowered
            ):
                raise TransactionNotFound(f"block.io {method}: {message}")
            # A "fail" envelope is block.io refusing the request: nothing happened.
            raise NotSent(f"block.io {method}: {message}")
        return body["data"]

    def read(self, method: str, **params) -> dict:
        """A safe request: retried with backoff on connection errors, 5xx and 429."""
        url = f"{checked_node_url(self.base_url)}{method}/"
        delay, waited = self.backoff, 0.0
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = self.session.get(
                    url,
                    params={"api_key": self.api_key, **params},
                    timeout=(min(5, self.timeout), self.timeout),
                    allow_redirects=False,  # a redirect could lead off NODE_HOSTS
                )
            except requests.RequestException as exc:
                if last:
                    raise NodeUnreachable(
                        f"block.io {method}: {type(exc).__name__} after {attempt} attempts"
                    ) from None
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if last:
                    raise NodeUnreachable(
                        f"block.io {method}: HTTP {response.status_code} after {attempt} attempts"
                    )
                pause = _retry_after(response, delay)
                if waited + pause > self.max_retry_after:
                    raise NodeUnreachable(
                        f"block.io {method}: rate-limited (Retry-After {pause:g} s exceeds the "
                        "bound)"
                    )
                time.sleep(pause)
                waited += pause
                delay *= 2
                continue
            return self._envelope(method, response)
        raise AssertionError("unreachable")

    def write(self, method: str, timeout: float | None = None, **params) -> dict:
        """A state-changing request: one attempt, outcome classified."""
        url = f"{checked_node_url(self.base_url)}{method}/"
        timeout = timeout or self.timeout
        try:
            response = self.session.post(
                url,
                data={"api_key": self.api_key, "pin": self.pin, **params},
                timeout=(min(5, timeout), timeout),
                allow_redirects=False,  # a redirect could lead off NODE_HOSTS
            )
        except requests.ConnectTimeout:
            # Checked first: requests' ConnectTimeout is also a ConnectionError and a Timeout.
            raise NotSent(f"block.io {method}: could not connect in time, nothing sent") from None
        except requests.ConnectionError as exc:
            if _refused(exc):
                raise NotSent(f"block.io {method}: connection refused, nothing sent") from None
            raise OutcomeUnknown(
                f"block.io {method}: connection lost, outcome unknown ({type(exc).__name__})"
            ) from None
        except requests.Timeout:
            raise OutcomeUnknown(
                f"block.io {method}: no answer in {timeout:g} s, outcome unknown"
            ) from None
        except requests.RequestException as exc:
            raise OutcomeUnknown(
                f"block.io {method}: {type(exc).__name__}, outcome unknown"
            ) from None
        if response.status_code == 429:
            raise NotSent(f"block.io {method}: rate-limited, nothing sent")
        if response.status_code >= 500:
            raise OutcomeUnknown(f"block.io {method}: HTTP {response.status_code}, outcome unknown")
        try:
            return self._envelope(method, response)
        except BadReply as exc:
            # A success we cannot read may still have sent the coins.
            raise OutcomeUnknown(f"{exc}; outcome unknown") from None

    # -- conversions -------------------------------------------------------------------

    def units(self, value) -> int:
        if not isinstance(value, str):
            raise BadReply(f"block.io amount {value!r} is not a decimal string")
        try:
            return to_units(value, self.decimals)
        except AmountError as exc:
            raise BadReply(f"block.io amount: {exc}") from None

    def my_addresses(self) -> set[str]:
        if self._mine is None:
            data = self.read("get_my_addresses")
            self._mine = {
                a["address"]
                for a in data.get("addresses", [])
                if isinstance(a, dict) and "address" in a
            }
        return self._mine

    # -- the interface -------------------------------------------------------------------

    def new_address(self, label: str = "") -> str:
        data = self.write("get_new_address", **({"label": label} if label else {}))
        address = data.get("address")
        if not isinstance(address, str) or not self.validate_address(address):
            raise BadReply("block.io get_new_address: no valid address in the reply")
        if self._mine is not None:
            self._mine.add(address)
        return address

    def validate_address(self, address: str) -> bool:
        versions = ADDRESS_VERSIONS.get(self.network)
        decoded = _b58check_decode(address)
        return bool(versions and decoded and len(decoded) == 21 and decoded[0] in versions)

    def get_balance(self, minconf: int = 0) -> int:
        data = self.read("get_balance")
        available = self.units(data.get("available_balance"))
        pending = self.units(data.get("pending_received_balance", "0"))
        return available + pending if minconf == 0 else available

    def address_balances(self, addresses: list[str]) -> dict[str, int]:
        data = self.read("get_address_balance", addresses=",".join(addresses))
        return {
            b["address"]: self.units(b["available_balance"])
            + self.units(b.get("pending_received_balance", "0"))
            for b in data.get("balances", [])
        }

    def _raw(self, txid: str) -> tuple[dict, bytes]:
        data = self.read("get_raw_transaction", txid=txid)
        try:
            raw = bytes.fromhex(data["tx_hex"])
        except (KeyError, TypeError, ValueError):
            raise BadReply(f"block.io get_raw_transaction {txid}: no tx_hex") from None
        if _txid(raw) != txid:
            raise BadReply(f"block.io get_raw_transaction {txid}: tx_hex hashes to another txid")
        return data, raw

    def _address(self, script: bytes) -> str | None:
        return _script_address(
            script, ADDRESS_VERSIONS.get(self.network, (0, 5)), SEGWIT_HRP.get(self.network)
        )

    def get_transaction(self, txid: str) -> TxInfo:
        data, raw = self._raw(txid)
        try:
            confirmations = int(data["confirmations"])
        except (KeyError, TypeError, ValueError):
            raise BadReply(f"block.io get_raw_transaction {txid}: no confirmations") from None
        mine = self.my_addresses()
        outputs = []
        for vout, (value, script) in enumerate(_decode_outputs(raw)):
            address = self._address(script)
            if address is None:
                continue
            if address in mine:
                outputs.append(TxOutput(address, "receive", value, vout))
            # Ours and sent by us: a payment too, as bitcoind lists a send to itself.
            if address not in mine or txid in self._ours:
                outputs.append(TxOutput(address, "send", value, vout))
        return TxInfo(
            txid=txid,
            confirmations=confirmations,
            fee=self._fees.get(txid),
            outputs=tuple(outputs),
            blockhash=data.get("blockhash"),
        )

    def spends_own_coins(self, txid: str) -> bool:
        _, raw = self._raw(txid)
        inputs, outputs, _ = _parse(raw)
        mine = self.my_addresses()
        spent = 0
        for prev_txid, vout in inputs:
            try:
                _, prev = self._raw(prev_txid)
            except TransactionNotFound:
                return False
            prev_outputs = _decode_outputs(prev)
            if vout >= len(prev_outputs) or self._address(prev_outputs[vout][1]) not in mine:
                return False
            spent += prev_outputs[vout][0]
        if inputs and txid not in self._fees and spent >= sum(value for value, _ in outputs):
            # All inputs are ours, so we know what they held: the fee is what the outputs leave.
            self._fees[txid] = spent - sum(value for value, _ in outputs)
        if inputs:
            self._ours.add(txid)
        return bool(inputs)

    def transaction_coins(self, txid: str) -> set[str]:
        _, raw = self._raw(txid)
        return {f"{t}:{v}" for t, v in _parse(raw)[0]}

    def find_sent(self, outputs: dict[str, int], since, *, any_output: bool = False) -> list[str]:
        """Sent transactions since `since` (paged newest first) paying exactly `outputs`: each
        of them its amount, anything else only to our own addresses (change). An output to one
        of our own addresses that `outputs` names is paid like any other. `any_output`: the
        sends paying at least one of `outputs` its amount (what "never left" must not find)."""
        cutoff = since.timestamp() - 60  # block.io's clock and ours may differ a little
        mine = self.my_addresses()
        found, before = [], None
        while True:
            data = self.read(
                "get_transactions", type="sent", **({"before_tx": before} if before else {})
            )
            txs = data.get("txs", [])
            for tx in txs:
                try:
                    if int(tx["time"]) < cutoff:
                        return found
                    paid: dict[str, int] = {}
                    for a in tx["amounts_sent"]:
                        paid[a["recipient"]] = paid.get(a["recipient"], 0) + self.units(a["amount"])
                except (KeyError, TypeError, ValueError):
                    raise BadReply(
                        "block.io get_transactions: a sent transaction lacks txid, time or amounts"
                    ) from None
                if _pays(paid, outputs, mine, any_output):
                    txid = check_txid(tx.get("txid"), "block.io get_transactions type=sent")
                    self._ours.add(txid)
                    found.append(txid)
            if not txs:
                return found
            before = txs[-1]["txid"]

    def list_since_block(self, blockhash, target_confirmations=1) -> SinceBlock:
        # No block cursor in block.io's API: the newest page of received transactions serves
        # to discover deposits; open rows are polled by txid (the tracker's fallback).
        data = self.read("get_transactions", type="received")
        txs = data.get("txs", []) if isinstance(data, dict) else None
        if not isinstance(txs, list):
            raise BadReply("block.io get_transactions: the reply holds no list of transactions")
        return SinceBlock(tuple(self._received_info(tx) for tx in txs), "")

    def _received_info(self, tx: dict) -> TxInfo:
        try:
            outputs = tuple(
                TxOutput(a["recipient"], "receive", self.units(a["amount"]))
                for a in tx["amounts_received"]
            )
            return TxInfo(
                txid=check_txid(tx["txid"], "block.io get_transactions"),
                confirmations=int(tx["confirmations"]),
                fee=None,
                outputs=outputs,
            )
        except (KeyError, TypeError, ValueError):
            raise BadReply(
                "block.io get_transactions: a transaction lacks txid, confirmations or amounts"
            ) from None

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
        for units in outputs.values():
            if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
                raise AmountError(f"refusing amount {units!r}: base units must be a positive int")
        timeout = seconds_left(deadline, self.timeout)
        data = self.write(
            "withdraw",
            timeout=timeout,
            amounts=",".join(format_units(u, self.decimals) for u in outputs.values()),
            to_addresses=",".join(outputs),
            **({"nonce": nonce} if nonce else {}),
        )
        txid = data.get("txid")
        if not is_txid(txid):
            raise OutcomeUnknown("block.io withdraw: no txid in a success reply, outcome unknown")
        self._ours.add(txid)
        try:
            self._fees[txid] = self.units(data.get("network_fee"))
        except BadReply:
            pass  # the txid matters more than the fee: filled in later
        return txid

    def find_by_comment(self, comment: str) -> list[str]:
        raise BackendError(
            "block.io keeps no transaction comments: find the transaction by its outputs "
            "in block.io's dashboard and close the broadcast with its txid"
        )

    def iter_received(self, page_size: int = 1000, progress=None):
        before = None
        while True:
            data = self.read(
                "get_transactions", type="received", **({"before_tx": before} if before else {})
            )
            txs = data.get("txs", [])
            if progress:
                progress(len(txs))
            if not txs:  # only an empty page ends the history
                return
            for tx in txs:
                info = self._received_info(tx)
                for out in info.outputs:
                    yield ReceivedEntry(info.txid, out.address, out.amount, info.confirmations)
            before = txs[-1]["txid"]

    def list_received_by_address(self, minconf: int = 0) -> list[ReceivedByAddress]:
        totals: dict[str, list] = {}
        for entry in self.iter_received():
            if entry.confirmations < minconf:
                continue
            total = totals.setdefault(entry.address, [0, [], 0])
            total[0] += entry.amount
            total[1].append(entry.txid)
            total[2] = max(total[2], entry.confirmations)
        return [ReceivedByAddress(a, t[0], t[2], tuple(t[1])) for a, t in totals.items()]

    def block_height(self):
        self.read("get_balance")  # reachability: block.io reports no block height
        return None


def _pays(paid: dict[str, int], outputs: dict[str, int], mine: set[str], any_output: bool) -> bool:
    """Whether a send's recipients `paid` pay `outputs` (see find_sent)."""
    if any_output:
        return any(paid.get(a) == v for a, v in outputs.items())
    return all(paid.get(a) == v for a, v in outputs.items()) and all(
        a in outputs or a in mine for a in paid
    )


def _retry_after(response, default: float) -> float:
    try:
        return max(0.0, float(Decimal(response.headers.get("Retry-After", ""))))
    except (ArithmeticError, ValueError):
        return default


def _refused(exc) -> bool:
    text = repr(exc)
    return "Connection refused" in text or "NewConnectionError" in text or "Errno 111" in text


def _b58check_decode(address: str) -> bytes | None:
    try:
        number = 0
        for char in address:
            number = number * 58 + B58.index(char)
    except ValueError:
        return None
    full = number.to_bytes((number.bit_length() + 7) // 8, "big")
    full = b"\x00" * (len(address) - len(address.lstrip("1"))) + full
    payload, checksum = full[:-4], full[-4:]
    return payload if len(full) > 4 and rawtx.sha256d(payload)[:4] == checksum else None


def b58check_encode(payload: bytes) -> str:
    data = payload + rawtx.sha256d(payload)[:4]
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = B58[rest] + out
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out


def _parse(raw: bytes):
    try:
        return rawtx.parse(raw)
    except rawtx.RawTxError:
        raise BadReply("block.io tx_hex is not a serialized transaction") from None


def _txid(raw: bytes) -> str:
    return rawtx.sha256d(_parse(raw)[2])[::-1].hex()


def _decode_outputs(raw: bytes) -> list[tuple[int, bytes]]:
    """(value in base units, scriptPubKey) of each output of a serialized transaction."""
    return _parse(raw)[1]


def _script_address(script: bytes, versions: tuple[int, int], hrp: str | None = None) -> str | None:
    if len(script) == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return b58check_encode(bytes([versions[0]]) + script[3:23])
    if len(script) == 23 and script[:2] == b"\xa9\x14" and script[22:] == b"\x87":
        return b58check_encode(bytes([versions[1]]) + script[2:22])
    # Witness v0: P2WPKH (20-byte program) and P2WSH (32), as bech32 (BIP 173).
    if hrp and len(script) in (22, 34) and script[0] == 0 and script[1] == len(script) - 2:
        return bech32_encode(hrp, 0, script[2:])
    return None


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def bech32_encode(hrp: str, version: int, program: bytes) -> str:
    """A segwit v0 address (BIP 173)."""
    acc, bits, data = 0, 0, [version]
    for byte in program:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32[d] for d in data + checksum)
