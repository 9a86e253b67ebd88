"""The ways in: the scheduler's poll of every currency, the command's poll of one,
walletnotify's txid, the listener's announced transactions, the admin's "Check now"."""

import logging

from cryptoadmin import faults

from ..backends import BackendError
from ..backends.base import TxInfo
from ..models import POLLED_STATES, Currency, NetworkTransaction, Wallet
from .apply import apply
from .crediting import record_deposits
from .cycle import poll_wallet, record_poll_error
from .summary import Summary, counting_statements

log = logging.getLogger(__name__)
NT = NetworkTransaction


def update_confirmations(currency: Currency) -> Summary:
    """Poll every enabled wallet of the currency. A failing wallet is recorded on the wallet
    (last_poll_error) and does not stop the others."""
    summary = Summary()
    for wallet in Wallet.objects.filter(currency=currency, enabled=True).select_related("currency"):
        try:
            summary += poll_wallet(wallet)
        except Exception as exc:  # noqa: BLE001 - any failure of one wallet, recorded on it
            if not isinstance(exc, BackendError):
                log.exception("polling %s failed", wallet.name)
            else:
                log.warning("polling %s failed: %s", wallet.name, exc)
            record_poll_error(wallet, exc)
            summary.failed += 1
    return summary


def update_one(currency: Currency, txid: str) -> Summary:
    """walletnotify's fast path: this txid on every enabled wallet of the currency, now.

    A wallet whose node fails does not stop the others; the error is raised at the end only
    if no wallet could be asked (the scheduler's poll is the safety net)."""
    summary = Summary()
    failures: list[BackendError] = []
    wallets = list(
        Wallet.objects.filter(currency=currency, enabled=True).select_related("currency")
    )
    for wallet in wallets:
        try:
            info = wallet.get_backend().get_transactions([txid]).get(txid)
        except BackendError as exc:
            log.warning("walletnotify %s on %s failed: %s", txid, wallet.name, exc)
            failures.append(exc)
            summary.failed += 1
            continue
        summary.round_trips += 1
        if isinstance(info, TxInfo):
            summary.discovered += record_deposits(wallet, [info])
        faults.point("notify.after_record")
        rows = list(NT.objects.polled().filter(wallet=wallet, txid=txid))
        if rows:
            summary += apply(rows, {txid: info}, currency)
    if failures and len(failures) == len(wallets):
        raise failures[0]
    return summary


def record_transactions(wallet: Wallet, txids: list[str], backend=None) -> Summary:
    """The listener's fast path: transactions the node just announced, asked about in one
    batch; those of this wallet are recorded (deposits) and their rows moved, the others
    (not the wallet's) ignored."""
    backend = backend or wallet.get_backend()
    summary = Summary()
    with counting_statements() as sql:
        infos = backend.get_transactions(txids)
        summary.round_trips += -(-len(txids) // 2000)
        ours = {txid: info for txid, info in infos.items() if isinstance(info, TxInfo)}
        if ours:
            summary.discovered += record_deposits(wallet, ours.values())
            faults.point("notify.after_record")
            rows = list(NT.objects.polled().filter(wallet=wallet, txid__in=list(ours)))
            if rows:
                summary += apply(rows, ours, wallet.currency)
    summary.statements += sql[0]
    return summary


def check_rows(rows) -> Summary:
    """The admin's "Check now": these rows, against their wallets' nodes, now."""
    summary = Summary()
    by_wallet: dict[int, list] = {}
    for row in rows:
        if row.state not in POLLED_STATES:
            continue  # closed rows (by the tracker or by hand) are settled
        by_wallet.setdefault(row.wallet_id, []).append(row)
    for wallet in Wallet.objects.filter(pk__in=by_wallet).select_related("currency"):
        group = list(NT.objects.polled().filter(pk__in=[r.pk for r in by_wallet[wallet.pk]]))
        infos = wallet.get_backend().get_transactions([r.txid for r in group])
        summary += apply(group, infos, wallet.currency)
    return summary


def poll_all_currencies() -> dict:
    """The scheduler's entry point: every enabled currency."""
    return {c.code: str(update_confirmations(c)) for c in Currency.objects.filter(enabled=True)}
