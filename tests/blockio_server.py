"""A local stand-in for block.io's v2 API (which cannot be reached from here), speaking the
documented protocol over real HTTP on 127.0.0.1: the JSON envelope, amounts as decimal
strings, api_key checks, 25 transactions a page with before_tx, and raw transactions whose
txids are their real double-SHA256. Tests inject failures per method."""
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


def raw_tx(outputs: list[tuple[str, int]]) -> bytes:
    """A serialized transaction (one made-up input) paying P2PKH outputs."""
    body = (1).to_bytes(4, "little") + b"\x01" + os.urandom(32) + b"\x00\x00\x00\x00" + b"\x00" + b"\xff" * 4
    body += bytes([len(outputs)])
    for address, units in outputs:
        script = b"\x76\xa9\x14" + _h160(address) + b"\x88\xac"
        body += units.to_bytes(8, "little") + bytes([len(script)]) + script
    return body + b"\x00\x00\x00\x00"


class FakeBlockIo:
    def __init__(self, api_key="test-api-key-123", pin="secret-pin-456"):
        self.api_key, self.pin = api_key, pin
        self.addresses: dict[str, str] = {}  # address -> label
        self.available = 0
        self.txs: dict[str, dict] = {}  # txid -> {hex, confirmations, received: [(addr, units)], sent: [...]}
        self.received_order: list[str] = []  # newest first
        self.nonces: dict[str, str] = {}
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

    def receive(self, address: str, amount: str, confirmations: int = 0) -> str:
        """Someone outside pays `address` (ours or not) and something else."""
        units = to_units(amount, 8)
        stranger, _ = new_address()
        raw = raw_tx([(address, units), (stranger, 12_345)])
        txid = sha256d(raw)[::-1].hex()
        with self.lock:
            self.txs[txid] = {"hex": raw.hex(), "confirmations": confirmations, "received": [(address, units)]}
            self.received_order.insert(0, txid)
            if address in self.addresses:
                self.available += units
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
                failure = fake.failures.get(method, [None]).pop(0) if fake.failures.get(method) else None
                if failure == "timeout":
                    time.sleep(3)
                if failure == "drop":
                    self.close_connection = True
                    return
                if failure == "429":
                    return self._send(429, b'{"status": "fail", "data": {"error_message": "Rate limit"}}',
                                      [("Retry-After", "0.1")])
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
                self._send(status, json.dumps({"status": "fail", "data": {"error_message": message}}).encode())

        return Handler

    def api_get_new_address(self, params):
        address = self.own_address(params.get("label", ""))
        return {"network": "BTCTEST", "address": address, "label": params.get("label", "")}

    def api_get_my_addresses(self, params):
        return {"network": "BTCTEST", "addresses": [
            {"address": a, "label": l, "available_balance": "0.00000000"} for a, l in self.addresses.items()]}

    def api_get_balance(self, params):
        pending = sum(u for t in self.txs.values() if t["confirmations"] == 0 for a, u in t["received"]
                      if a in self.addresses)
        return {"network": "BTCTEST", "available_balance": format_units(self.available - pending, 8),
                "pending_received_balance": format_units(pending, 8)}

    def api_get_address_balance(self, params):
        wanted = params.get("addresses", "").split(",")
        balances = []
        for address in wanted:
            got = sum(u for t in self.txs.values() for a, u in t["received"] if a == address)
            balances.append({"address": address, "label": self.addresses.get(address, ""),
                             "available_balance": format_units(got, 8), "pending_received_balance": "0.00000000"})
        return {"network": "BTCTEST", "balances": balances}

    def api_get_raw_transaction(self, params):
        tx = self.txs.get(params.get("txid", ""))
        if tx is None:
            raise ValueError("Transaction not found.")
        return {"network": "BTCTEST", "txid": params["txid"], "confirmations": tx["confirmations"],
                "blockhash": None, "tx_hex": tx["hex"]}

    def api_get_transactions(self, params):
        if params.get("type") != "received":
            raise ValueError("Only type=received is served here.")
        order = self.received_order
        if params.get("before_tx"):
            order = order[order.index(params["before_tx"]) + 1:]
        page = order[:PAGE]
        return {"network": "BTCTEST", "txs": [
            {"txid": t, "confirmations": self.txs[t]["confirmations"], "time": 0, "from_green_address": False,
             "amounts_received": [{"recipient": a, "amount": format_units(u, 8)} for a, u in self.txs[t]["received"]],
             "senders": ["unknown"], "confidence": 1.0, "propagated_by_nodes": None}
            for t in page]}

    def api_withdraw(self, params):
        if params.get("pin") != self.pin:
            raise ValueError("Invalid Secret PIN provided.")
        if params.get("nonce") in self.nonces:
            raise ValueError("Nonce already used: this withdrawal was already processed.")
        amounts = [to_units(a, 8) for a in params["amounts"].split(",")]
        addresses = params["to_addresses"].split(",")
        from ledger.backends.blockio import _b58check_decode

        for address in addresses:
            if not _b58check_decode(address):
                raise ValueError(f"Invalid address provided: {address}.")
        if sum(amounts) + self.fee > self.available:
            raise ValueError("Cannot withdraw funds without Network Fee. Insufficient balance.")
        change = self.own_address("change")
        raw = raw_tx(list(zip(addresses, amounts)) + [(change, self.available - sum(amounts) - self.fee)])
        txid = sha256d(raw)[::-1].hex()
        with self.lock:
            self.txs[txid] = {"hex": raw.hex(), "confirmations": 0, "received": []}
            self.available -= sum(amounts) + self.fee
            self.nonces[params.get("nonce")] = txid
        return {"network": "BTCTEST", "txid": txid, "amount_withdrawn": format_units(sum(amounts) + self.fee, 8),
                "amount_sent": format_units(sum(amounts), 8), "network_fee": format_units(self.fee, 8),
                "blockio_fee": "0.00000000"}


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
