"""Operations a test runs in a child process against an SQLite database (DATABASE_URL), so that
the broadcaster and the operator are separate real processes sharing one SQLite file.

python -m tests.broadcast_sqlite_child setup NODE_URL ADDRESS UNITS
python -m tests.broadcast_sqlite_child close never_left|reached_network [TXID] [--blind]
python -m tests.broadcast_sqlite_child state
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devtools.settings_test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402


def setup(node_url, address, units):
    from django.contrib.auth import get_user_model

    from broadcasts.withdrawals import send_external
    from ledger.models import Wallet
    from tests.support import credit_user, grant, make_currency

    btc = make_currency("BTC")
    wallet = Wallet.objects.create(
        name="sqlite-btc", currency=btc, backend="bitcoind", backend_settings={"url": node_url}
    )
    alice = credit_user(wallet, "alice", wallet.get_backend().get_balance(0))
    send_external(alice, address, int(units))
    operator = get_user_model().objects.create_user("operator", password="pw", is_staff=True)
    grant(operator, "broadcasts.close_broadcast_by_hand")
    print("ready", wallet.name, flush=True)


class Blind:
    """The operator's view of a node wallet that has not recorded the send (yet)."""

    def __init__(self, backend):
        self.backend = backend

    def find_by_comment(self, comment):
        return []

    def known_transaction(self, txid):
        return None

    def __getattr__(self, name):
        return getattr(self.backend, name)


def close(method, *args):
    from django.contrib.auth import get_user_model

    from broadcasts.closing import close_as_broadcasted, close_as_never_left
    from broadcasts.models import Broadcast
    from cryptoadmin.errors import CloseRefused

    blind = "--blind" in args
    args = [a for a in args if a != "--blind"]
    user = get_user_model().objects.get(username="operator")
    broadcast = Broadcast.objects.order_by("id").last()
    backend = broadcast.wallet.get_backend()
    if blind:
        backend = Blind(backend)
    try:
        if method == "never_left":
            close_as_never_left(broadcast, user, "checked by the sqlite test", backend=backend)
        else:
            close_as_broadcasted(
                broadcast, args[0], user, "checked by the sqlite test", backend=backend
            )
    except CloseRefused as exc:
        print("refused:", exc, flush=True)
        return
    print("closed", flush=True)


def state():
    from broadcasts.models import Broadcast, OutgoingTransaction
    from broadcasts.selections import interrupted_broadcasts

    print(
        json.dumps(
            {
                "vendor": connection.vendor,
                "broadcasts": list(
                    Broadcast.objects.order_by("id").values(
                        "id",
                        "state",
                        "txid",
                        "last_error",
                        *(["needs_attention"] if hasattr(Broadcast, "needs_attention") else []),
                    )
                ),
                "outgoing": list(
                    OutgoingTransaction.objects.order_by("id").values("id", "state", "broadcast_id")
                ),
                "interrupted": list(interrupted_broadcasts().values_list("id", flat=True)),
            },
            default=str,
        ),
        flush=True,
    )


if __name__ == "__main__":
    {"setup": setup, "close": close, "state": state}[sys.argv[1]](*sys.argv[2:])
