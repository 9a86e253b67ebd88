"""A local stand-in for block.io's v2 API (which cannot be reached from here), speaking the
documented protocol over real HTTP on 127.0.0.1: the JSON envelope, amounts as decimal
strings, api_key checks, 25 transactions a page with before_tx, and raw transactions whose
txids are their real double-SHA256 (of the serialization without witness data).

Withdrawals spend the wallet's own received outputs (their inputs point at them), and follow
block.io's documented nonce rule: "Withdrawal requests that provide duplicate nonces less
than 1 hour apart will be rejected" (the error text is ours: the docs do not give it); an
hour later the same nonce pays again. `clock` stands for block.io's time so a test can move
it. Sent transactions are listed by get_transactions type=sent. Tests inject failures per
method; "timeout" answers late but does the work, "drop" closes the connection before it."""

import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from ledger.backends.blockio import b58check_encode
from ledger.money import format_units, to_units

TESTNET_P2PKH = 0x6F
PAGE = 25


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def new_address() -> tuple[str, bytes]:
    h160 = os.urandom(20)
    return b58check_encode(bytes([TESTNET_P2PKH]) + h160), h160


def _h160(address: str) -> bytes:
    from ledger.backends.blockio import _b58check_decode

    return _b58check_decode(address)[1:]


def raw_tx(
    outputs: list[tuple[str, int]],
    inputs: list[tuple[str, int]] | None = None,
    segwit: bool = False,
) -> bytes:
    """A serialized transaction paying P2PKH outputs, spending `inputs` [(txid, vout)] (one
    made-up input if none). With `segwit`, in BIP 144 form: marker, flag and a witness per
    input; its txid is still the hash of the form without them (see stripped_tx)."""
    inputs = inputs or [(os.urandom(32)[::-1].hex(), 0)]
    ins = bytes([len(inputs)])
    for txid, vout in inputs:
        ins += bytes.fromhex(txid)[::-1] + vout.to_bytes(4, "little") + b"\x00" + b"\xff" * 4
    outs = bytes([len(outputs)])
    for address, units in outputs:
        script = b"\x76\xa9\x14" + _h160(address) + b"\x88\xac"
        outs += units.to_bytes(8, "little") + bytes([len(script)]) + script
    version, locktime = (2 if segwit else 1).to_bytes(4, "little"), b"\x00\x00\x00\x00"
    if not segwit:
        return version + ins + outs + locktime
    # One witness stack per input: a 71-byte signature and a 33-byte public key (made up).
    witness = b"".join(
        b"\x02" + b"\x47" + os.urandom(71) + b"\x21" + b"\x02" + os.urandom(32) for _ in inputs
    )
    return version + b"\x00\x01" + ins + outs + witness + locktime


def stripped_tx(raw: bytes, n_inputs: int = 1) -> bytes:
    """The non-witness serialization of a raw_tx(..., segwit=True) with P2PKH outputs, cut out
    by hand (so the test does not trust the code it checks): version, inputs, outputs, locktime."""
    body = raw[6:]  # after version (4) + marker and flag (2)
    ins_len = 1 + n_inputs * (32 + 4 + 1 + 4)
    n_out = body[ins_len]
    outs_len = 1 + n_out * (8 + 1 + 25)
    return raw[:4] + body[: ins_len + outs_len] + raw[-4:]


def txid_of(raw: bytes) -> str:
    return sha256d(raw)[::-1].hex()


class FakeBlockIo:
    def __init__(self, api_key="test-api-key-123", pin="secret-pin-456"):
        self.api_key, self.pin = api_key, pin
        self.addresses: dict[str, str] = {}  # address -> label
        self.available = 0
        self.txs: dict[
            str, dict
        ] = {}  # txid -> {hex, confirmations, received: [(addr, units)], sent: [...]}
        self.received_order: list[str] = []  # newest first
        self.nonces: dict[str, str] = {}  # nonce -> txid of the withdraw that used it
        self.nonce_times: dict[str, float] = {}
        self.clock = time.time  # block.io's time; tests replace it to move an hour on
        self.sent: list[dict] = []  # newest first: {txid, time, amounts: [(addr, units)]}
        self.utxos: list[tuple[str, int, int]] = []  # (txid, vout, units) of ours, unspent
        self.requests: list[str] = []
        self.failures: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.fee = 10_000
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- life --------------------------------------------------------------------------

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/api/v2/"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- what tests do ------------------------------------------------------------------

    def fail_next(self, method: str, *kinds: str):
        """kinds: fail, 429, 500, timeout, malformed, bad_amount, float_amount, drop"""
        self.failures.setdefault(method, []).extend(kinds)

    def count(self, method):
        return self.requests.count(method)

    def own_address(self, label=""):
        address, _ = new_address()
        self.addresses[address] = label
        return address

    def receive(
        self, address: str, amount: str, confirmations: int = 0, segwit: bool = False
    ) -> str:
        """Someone outside pays `address` (ours or not) and something else."""
        units = to_units(amount, 8)
        stranger, _ = new_address()
        raw = raw_tx([(address, units), (stranger, 12_345)], segwit=segwit)
        txid = txid_of(stripped_tx(raw) if segwit else raw)
        with self.lock:
            self.txs[txid] = {
                "hex": raw.hex(),
                "confirmations": confirmations,
                "received": [(address, units)],
            }
            self.received_order.insert(0, txid)
            if address in self.addresses:
                self.available += units
                self.utxos.append((txid, 0, units))
        return txid

    def foreign_payment(self, outputs: dict[str, int]) -> str:
        """Someone else's transaction paying exactly these outputs from coins not ours."""
        raw = raw_tx(list(outputs.items()))
        txid = txid_of(raw)
        with self.lock:
            self.txs[txid] = {"hex": raw.hex(), "confirmations": 1, "received": []}
        return txid

    def confirm(self, n=1):
        with self.lock:
            for tx in self.txs.values():
                tx["confirmations"] += n

    # -- the API ------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                parsed = urlparse(self.path)
                self._serve(parsed.path, {k: v[0] for k, v in parse_qs(parsed.query).items()})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                params = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                self._serve(urlparse(self.path).path, params)

            def _send(self, status, body: bytes, headers=()):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:
                    pass  # the client gave up first (timeout tests)

            def _serve(self, path, params):
                method = path.strip("/").split("/")[-1]
                fake.requests.append(method)
                failure = (
                    fake.failures.get(method, [None]).pop(0) if fake.failures.get(method) else None
                )
                if failure == "timeout":
                    time.sleep(3)
                if failure == "drop":
                    self.close_connection = True
                    return
                if failure == "429":
                    return self._send(
                        429,
                        b'{"status": "fail", "data": {"error_message": "Rate limit"}}',
                        [("Retry-After", "0.1")],
                    )
                if failure == "500":
                    return self._send(500, b"<html>oops</html>")
                if failure == "malformed":
                    return self._send(200, b'{"status": "success", "data": {')
                if params.get("api_key") != fake.api_key:
                    return self._fail("Invalid API key.", 401)
                if failure == "fail":
                    return self._fail("Something went wrong on our side.")
                handler = getattr(fake, f"api_{method}", None)
                if handler is None:
                    return self._fail(f"Method {method} not found.", 404)
                try:
                    data = handler(params)
                except ValueError as exc:
                    return self._fail(str(exc))
                if failure == "bad_amount":
                    data = _corrupt(data, "0.123456789")
                if failure == "float_amount":
                    data = _corrupt(data, 0.1)
                self._send(200, json.dumps({"status": "success", "data": data}).encode())

            def _fail(self, message, status=200):
                self._send(
                    status,
                    json.dumps({"status": "fail", "data": {"error_message": message}}).encode(),
                )

        return Handler

    def api_get_new_address(self, params):
        address = self.own_address(params.get("label", ""))
        return {"network": "BTCTEST", "address": address, "label": params.get("label", "")}

    def api_get_my_addresses(self, params):
        return {
            "network": "BTCTEST",
            "addresses": [
                {"address": a, "label": label, "available_balance": "0.00000000"}
                for a, label in self.addresses.items()
            ],
        }

    def api_get_balance(self, params):
        pending = sum(
            u
            for t in self.txs.values()
            if t["confirmations"] == 0
            for a, u in t["received"]
            if a in self.addresses
        )
        return {
            "network": "BTCTEST",
            "available_balance": format_units(self.available - pending, 8),
            "pending_received_balance": format_units(pending, 8),
        }

    def api_get_address_balance(self, params):
        wanted = params.get("addresses", "").split(",")
        balances = []
        for address in wanted:
            got = sum(u for t in self.txs.values() for a, u in t["received"] if a == address)
            balances.append(
                {
                    "address": address,
                    "label": self.addresses.get(address, ""),
                    "available_balance": format_units(got, 8),
                    "pending_received_balance": "0.00000000",
                }
            )
        return {"network": "BTCTEST", "balances": balances}

    def api_get_raw_transaction(self, params):
        tx = self.txs.get(params.get("txid", ""))
        if tx is None:
            raise ValueError("Transaction not found.")
        return {
            "network": "BTCTEST",
            "txid": params["txid"],
            "confirmations": tx["confirmations"],
            "blockhash": None,
            "tx_hex": tx["hex"],
        }

    def api_get_transactions(self, params):
        if params.get("type") == "sent":
            sent = self.sent
            if params.get("before_tx"):
                index = [t["txid"] for t in sent].index(params["before_tx"])
                sent = sent[index + 1 :]
            return {
                "network": "BTCTEST",
                "txs": [
                    {
                        "txid": t["txid"],
                        "confirmations": self.txs[t["txid"]]["confirmations"],
                        "time": int(t["time"]),
                        "from_green_address": True,
                        "total_amount_sent": format_units(sum(u for _, u in t["amounts"]), 8),
                        "amounts_sent": [
                            {"recipient": a, "amount": format_units(u, 8)} for a, u in t["amounts"]
                        ],
                        "senders": sorted(self.addresses)[:1],
                        "confidence": 1.0,
                        "propagated_by_nodes": None,
                    }
                    for t in sent[:PAGE]
                ],
            }
        if params.get("type") != "received":
            raise ValueError("Only type=received or type=sent is served here.")
        order = self.received_order
        if params.get("before_tx"):
            order = order[order.index(params["before_tx"]) + 1 :]
        page = order[:PAGE]
        return {
            "network": "BTCTEST",
            "txs": [
                {
                    "txid": t,
                    "confirmations": self.txs[t]["confirmations"],
                    "time": 0,
                    "from_green_address": False,
                    "amounts_received": [
                        {"recipient": a, "amount": format_units(u, 8)}
                        for a, u in self.txs[t]["received"]
                    ],
                    "senders": ["unknown"],
                    "confidence": 1.0,
                    "propagated_by_nodes": None,
                }
                for t in page
            ],
        }

    def api_withdraw(self, params):
        if params.get("pin") != self.pin:
            raise ValueError("Invalid Secret PIN provided.")
        nonce = params.get("nonce")
        with self.lock:
            if (
                nonce
                and nonce in self.nonce_times
                and self.clock() - self.nonce_times[nonce] < 3600
            ):
                raise ValueError(
                    "Duplicate nonce provided: withdrawal requests with the same nonce less than "
                    "1 hour apart are rejected."
                )
        amounts = [to_units(a, 8) for a in params["amounts"].split(",")]
        addresses = params["to_addresses"].split(",")
        from ledger.backends.blockio import _b58check_decode

        for address in addresses:
            if not _b58check_decode(address):
                raise ValueError(f"Invalid address provided: {address}.")
        with self.lock:
            if sum(amounts) + self.fee > self.available:
                raise ValueError("Cannot withdraw funds without Network Fee. Insufficient balance.")
            # Spends every unspent output of ours (coin selection does not matter here).
            spent, self.utxos = self.utxos, []
            change_units = sum(u for _, _, u in spent) - sum(amounts) - self.fee
            change = self.own_address("change")
            raw = raw_tx(
                list(zip(addresses, amounts, strict=True)) + [(change, change_units)],
                inputs=[(t, v) for t, v, _ in spent] or None,
            )
            txid = txid_of(raw)
            self.txs[txid] = {"hex": raw.hex(), "confirmations": 0, "received": []}
            self.utxos.append((txid, len(addresses), change_units))
            self.available -= sum(amounts) + self.fee
            if nonce:
                self.nonces[nonce] = txid
                self.nonce_times[nonce] = self.clock()
            self.sent.insert(
                0,
                {
                    "txid": txid,
                    "time": self.clock(),
                    "amounts": list(zip(addresses, amounts, strict=True)),
                },
            )
        return {
            "network": "BTCTEST",
            "txid": txid,
            "amount_withdrawn": format_units(sum(amounts) + self.fee, 8),
            "amount_sent": format_units(sum(amounts), 8),
            "network_fee": format_units(self.fee, 8),
            "blockio_fee": "0.00000000",
        }


def _corrupt(data, value):
    """Put `value` in the first amount-looking field of a reply."""
    for key in ("available_balance", "network_fee"):
        if key in data:
            return {**data, key: value}
    if "txs" in data and data["txs"]:
        tx = dict(data["txs"][0])
        tx["amounts_received"] = [{**tx["amounts_received"][0], "amount": value}]
        return {**data, "txs": [tx] + data["txs"][1:]}
    return data
