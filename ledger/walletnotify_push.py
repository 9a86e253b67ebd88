"""bitcoind's -walletnotify without Django: `python -I -S ledger/walletnotify_push.py CURRENCY TXID`
(deploy/walletnotify runs it with the service's environment file) hands "CURRENCY TXID" to the
running listener (`manage.py listen_node`) as one datagram on its unix socket, and exits. The
standard library only, so a call costs a bare interpreter's start (a few ms of CPU), where
`manage.py walletnotify` starts Django (most of a CPU-second), and bitcoind calls it for every
wallet transaction, twice for a deposit.

Socket: $WALLETNOTIFY_SOCKET, else var/walletnotify.sock in the repository (the default of
settings.WALLETNOTIFY_SOCKET). Exit 0 when handed over; 2 on bad input; 1 when no listener took
it (the scheduler's poll is the safety net: the transaction is found by its next cycle).
"""

import os
import re
import socket
import sys

TXID = re.compile(r"^[0-9a-f]{64}$")
CURRENCY = re.compile(r"^[A-Z0-9]{2,10}$")
SEND_TIMEOUT = 5.0  # seconds
DEFAULT_SOCKET = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var", "walletnotify.sock"
)


def main(argv) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: walletnotify_push.py CURRENCY TXID\n")
        return 2
    currency, txid = argv[0].strip().upper(), argv[1].strip().lower()
    if not CURRENCY.match(currency) or not TXID.match(txid):
        sys.stderr.write(f"walletnotify: bad currency or txid: {argv[0]!r} {argv[1]!r}\n")
        return 2
    path = os.environ.get("WALLETNOTIFY_SOCKET") or DEFAULT_SOCKET
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(SEND_TIMEOUT)  # a full queue (the listener stuck): give up, the poll finds it
    try:
        sock.sendto(f"{currency} {txid}".encode(), path)
    except OSError as exc:
        sys.stderr.write(
            f"walletnotify: no listener took it on {path} ({exc}); the next poll will find it\n"
        )
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
