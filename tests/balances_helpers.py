"""Ledger set-up shared by the balances tests (not a test module)."""

import threading

from django.db import connection

from ledger import services
from ledger.models import Account, Currency, Wallet


def currency(code, decimals=8, enabled=True):
    return Currency.objects.create(code=code, name=code, decimals=decimals, enabled=enabled)


def network_account(cur):
    wallet = Wallet.objects.create(
        name=f"{cur.code}-wallet", currency=cur, backend="bitcoind", backend_settings={}
    )
    return services.system_account(wallet, Account.Code.NETWORK)


def deposit(network, user_id, amount, code=201):
    """Post a deposit from the network to the user's account `code`."""
    cur = Currency.objects.get(pk=network.currency_id)
    return services.post(network, services.user_account(user_id, cur, code), amount, "deposit")


def move(user_id, cur, amount, source_code, destination_code):
    accounts = services.user_accounts(user_id, cur)
    return services.post(accounts[source_code], accounts[destination_code], amount, "internal")


def in_threads(n, func):
    """Run func(i) in n threads started together; return results (or exceptions) by index."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        try:
            barrier.wait(10)
            results[i] = func(i)
        except BaseException as exc:  # recorded for the test to assert on
            results[i] = exc
        finally:
            connection.close()  # each thread's own connection: don't leak it past the test

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
