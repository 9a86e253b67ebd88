"""A webhook receiver as the product would write one: it verifies every request with the
`standardwebhooks` package and records what it got.

In a thread (`Receiver(secret).start()`) for in-process tests, or as a process of its own:
`python tests/webhook_receiver.py PORT SECRET OUTFILE [MODE]`, appending one JSON line per
verified request (with the status it answered) to OUTFILE (MODE: ok, fail500, slow SECONDS).
SIGTERM stops it."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self, secret: str, port: int = 0, outfile: str | None = None):
        self.webhook = Webhook(secret)
        self.got: list[dict] = []  # verified: {"id", "body", "headers"}
        self.rejected = 0
        self.paths: list[str] = []
        self.replies: list = []  # (status, headers, body) used in turn; then `default`
        self.default = (204, {}, b"")
        self.delay = 0.0
        self.outfile = outfile
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.handle(self, body)

        return Handler

    def handle(self, request, body: bytes) -> None:
        with self.lock:
            self.paths.append(request.path)
            reply = self.replies.pop(0) if self.replies else self.default
        if self.delay:
            time.sleep(self.delay)
        try:
            payload = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            with self.lock:
                self.rejected += 1
            reply = (400, {}, b"bad signature")
        else:
            record = {
                "id": request.headers["webhook-id"],
                "body": payload,
                "status": reply[0],
                "at": time.time(),
            }
            with self.lock:
                self.got.append(record)
                if self.outfile:
                    with open(self.outfile, "a") as f:
                        f.write(json.dumps(record) + "\n")
        status, headers, text = reply
        try:
            request.send_response(status)
            for name, value in headers.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(text)))
            request.end_headers()
            request.wfile.write(text)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up (its timeout) or died: what it does next is under test


def main(argv):
    import signal

    port, secret, outfile = int(argv[1]), argv[2], argv[3]
    mode = argv[4] if len(argv) > 4 else "ok"
    receiver = Receiver(secret, port, outfile)
    if mode == "fail500":
        receiver.default = (500, {}, b"down for maintenance")
    elif mode == "slow":
        receiver.delay = float(argv[5])
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("listening", flush=True)
    receiver.server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
