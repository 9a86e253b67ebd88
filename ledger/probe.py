"""Asking every wallet's node something at once, with a short timeout: the one way the health
check and the operator's overview probe nodes."""

from concurrent.futures import ThreadPoolExecutor

MAX_THREADS = 8


def probe_wallets(wallets, ask, *, timeout: float, on_error, errors=(Exception,)) -> list:
    """[ask(wallet, backend)] for each wallet, in order, each on a fresh backend whose node calls
    give up after `timeout` seconds. In parallel threads, so one slow node does not make the
    whole probe slow; `ask` must not touch the database (a thread would open its own
    connection). A wallet whose backend cannot be made or whose `ask` raises one of `errors`
    gives `on_error(wallet, exc)` instead."""
    wallets = list(wallets)
    if not wallets:
        return []

    def one(wallet):
        try:
            return ask(wallet, wallet.get_backend(timeout=timeout))
        except errors as exc:
            return on_error(wallet, exc)

    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(wallets))) as pool:
        return list(pool.map(one, wallets))
