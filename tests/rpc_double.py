"""A loopback JSON-RPC server that answers what a test tells it to, malformed replies included.

The real regtest node cannot be made to misbehave; this one speaks bitcoind's HTTP JSON-RPC
(keep-alive, application/json) closely enough for python-bitcoinrpc and our batch call.
`answer(request)` gets the decoded request (a dict, or a list for a batch) and returns the
Python value sent back as the whole reply body (or bytes, sent as they are); the default
answers every call with null. `content_type` is the reply's Content-Type header."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RpcDouble:
    def __init__(self, answer=None, content_type="application/json"):
        self.answer = answer or (
            lambda request: {"result": None, "error": None, "id": request.get("id")}
        )
        self.requests: list = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body)
                double.requests.append(request)
                reply = double.answer(request)
                if not isinstance(reply, bytes):
                    reply = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://user:pass@127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> RpcDouble:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def single(result, request):
    """A well-formed single reply carrying `result`."""
    return {"result": result, "error": None, "id": request.get("id")}


def wallet_tx(txid: str, confirmations: int, address: str, amount: float) -> dict:
    """A gettransaction result receiving `amount` on `address`. The amount goes out as a JSON
    number (json writes a short float like 0.5 exactly); the client reads it back as Decimal."""
    return {
        "txid": txid,
        "confirmations": confirmations,
        "amount": amount,
        "blockhash": "00" * 32,
        "details": [{"address": address, "category": "receive", "amount": amount, "vout": 0}],
    }
