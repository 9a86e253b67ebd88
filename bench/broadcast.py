"""Benchmark: collect + send 10,000 queued outgoing transactions (2,000 addresses) as one
broadcast, on PostgreSQL and a regtest bitcoind started here. Also 1,000 (200 addresses),
to show that the number of SQL queries does not grow with the number of transactions.

    .venv/bin/python bench/broadcast.py [--quick]   (--quick: 600 and 1,000, in seconds)

Last line: `broadcast_10k_seconds: <s>`.
"""

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.localservices import LocalBitcoind, LocalPostgres  # noqa: E402


def queue(wallet, n, n_addresses, n_users=500):
    """Queue n outgoing transactions in bulk, as send_external would leave them (201 -> 204)."""
    from broadcasts.models import OutgoingTransaction

    addresses = new_addresses(wallet, n_addresses)
    amounts = [10_000 + i % 97 for i in range(n)]
    users, locks = lock_amounts(wallet, amounts, f"bench{n}", n_users)
    OutgoingTransaction.objects.bulk_create(
        [
            OutgoingTransaction(
                wallet=wallet,
                currency=wallet.currency,
                account=users[i % n_users][201],
                hold_account=users[i % n_users][204],
                address=addresses[i % n_addresses],
                amount=amount,
                lock_entry=lock,
            )
            for i, (amount, lock) in enumerate(zip(amounts, locks, strict=True))
        ],
        batch_size=2000,
    )
    return sum(amounts)


def new_addresses(wallet, count):
    """`count` fresh addresses of the node, each checked valid by it."""
    backend = wallet.get_backend()
    addresses = backend.batch([("getnewaddress", "bench")] * count)
    assert all(isinstance(a, str) for a in addresses) and all(
        r.get("isvalid") for r in backend.batch([("validateaddress", a) for a in addresses])
    )
    return addresses


def lock_amounts(wallet, amounts, tag, n_users):
    """Users funded by an import, then each amount moved 201 -> 204: (users, lock entries)."""
    from ledger import services as ledger
    from ledger.models import Account, Transaction

    currency = wallet.currency
    users = [ledger.user_accounts(f"{tag}-{u}", currency) for u in range(n_users)]
    importer = ledger.system_account(wallet, Account.Code.IMPORT)
    per_user = {}
    for i, amount in enumerate(amounts):
        per_user[i % n_users] = per_user.get(i % n_users, 0) + amount
    ledger.post_many(
        [
            Transaction(
                currency=currency,
                source=importer,
                destination=users[u][201],
                amount=a,
                kind="import",
            )
            for u, a in per_user.items()
        ]
    )
    locks = ledger.post_many(
        [
            Transaction(
                currency=currency,
                source=users[i % n_users][201],
                destination=users[i % n_users][204],
                amount=amount,
                kind="pending_outgoing",
            )
            for i, amount in enumerate(amounts)
        ]
    )
    return users, locks


def measure(wallet, n, n_addresses):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from broadcasts.broadcaster import Broadcaster
    from broadcasts.models import Broadcast

    total = queue(wallet, n, n_addresses)
    broadcaster = Broadcaster(wallet)
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        result = broadcaster.run()
        seconds = time.perf_counter() - start
    broadcast = Broadcast.objects.get(pk=result.broadcasts[0])
    assert result.sent == 1 and broadcast.state == "broadcasted", result.message
    assert (
        broadcast.transaction_count == n
        and broadcast.output_count == n_addresses
        and broadcast.total == total
    )
    info = wallet.get_backend().get_transaction(broadcast.txid)
    assert sum(info.sent().values()) + sum(info.received().values()) >= total
    print(
        f"{n:>6} outgoing -> {n_addresses:>5} outputs: {seconds:.3f} s, {len(queries)} SQL "
        f"queries, fee {broadcast.fee} base units, txid {broadcast.txid}"
    )
    return seconds, len(queries)


FIGURES = ("broadcast_10k_seconds",)
# (outgoing, addresses) of the two runs: the second is ten times the first.
FULL = ((1_000, 200), (10_000, 2_000))
QUICK = ((600, 120), (1_000, 200))


def main():
    small, large = QUICK if "--quick" in sys.argv else FULL
    pg = LocalPostgres().start()
    node = LocalBitcoind().start()
    try:
        wallet = set_up(pg, node)
        _, q_small = measure(wallet, *small)
        seconds, q_large = measure(wallet, *large)
        print(
            f"SQL queries: {q_small} at {small[0]:,} outgoing, {q_large} at {large[0]:,} outgoing "
            f"({'constant' if q_small == q_large else 'GROWS'})"
        )
        # The figure's name keeps the full run's size; --quick measures 1,000.
        print(f"broadcast_10k_seconds: {seconds:.3f}")
    finally:
        node.stop()
        pg.stop()


def set_up(pg, node):
    os.environ.update(
        DATABASE_URL=pg.url,
        SECRET_KEY="bench-secret-key-" + "x" * 40,
        DJANGO_SETTINGS_MODULE="cryptoadmin.settings",
        LOG_LEVEL="WARNING",
        NODE_HOSTS="127.0.0.1",  # the bench's own node on loopback
    )
    import django

    django.setup()
    from django.core.management import call_command

    from ledger.models import Currency, Wallet

    call_command("migrate", verbosity=0)
    node.generate(110)
    currency = Currency.objects.create(code="BTC", name="Bitcoin")
    return Wallet.objects.create(
        name="bench", currency=currency, backend_settings={"url": node.url}
    )


if __name__ == "__main__":
    main()
