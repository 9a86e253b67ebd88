"""Rescan receiving addresses for deposits the books missed (node down, notify lost, ...).

Found deposits are recorded as open deposit network transactions of the wallet; the
confirmation tracker takes over from there and credits each exactly once at the threshold.
Rescan only inserts rows it does not know (ignore_conflicts): it never writes an existing
row, so a deposit closed by hand stays closed and uncredited (ledger/confirmations/)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from cryptoadmin import faults

from . import actors
from .models import Address, Currency, NetworkTransaction, Wallet
from .signals import deposits_changed

RESCAN_PERM = "ledger.rescan_wallet"


def rescan_wallet(wallet: Wallet, page_size: int = 1000, progress=None) -> dict:
    backend = wallet.get_backend()
    ours = set(
        Address.objects.filter(wallet=wallet, kind=Address.Kind.RECEIVING).values_list(
            "address", flat=True
        )
    )
    known = set(
        NetworkTransaction.objects.filter(
            wallet=wallet, type=NetworkTransaction.Type.DEPOSIT
        ).values_list("txid", flat=True)
    )
    found: dict[str, int] = {}
    amounts: dict[str, int] = {}
    receives = 0
    for entry in backend.iter_received(page_size=page_size, progress=progress):
        if entry.address not in ours:
            continue
        receives += 1
        if entry.txid not in known:
            found[entry.txid] = max(entry.confirmations, found.get(entry.txid, entry.confirmations))
            amounts[entry.txid] = amounts.get(entry.txid, 0) + entry.amount
    now = timezone.now()
    _record_found(wallet, found, amounts, now)
    faults.point("rescan.after_record")
    result = {
        "found": len(found),
        "txids": sorted(found)[:100],
        "receives_on_our_addresses": receives,
        "addresses": len(ours),
        "finished_at": now.isoformat(),
    }
    Wallet.objects.filter(pk=wallet.pk).update(last_rescan_at=now, last_rescan_result=result)
    return result


def _record_found(wallet: Wallet, found: dict, amounts: dict, now) -> None:
    """The deposits found, recorded with their events in one transaction."""
    with transaction.atomic():
        # ignore_conflicts: the tracker or walletnotify may record the same txid meanwhile.
        NetworkTransaction.objects.bulk_create(
            [
                NetworkTransaction(
                    currency_id=wallet.currency_id,
                    wallet=wallet,
                    txid=txid,
                    type=NetworkTransaction.Type.DEPOSIT,
                    confirmations=max(confs, 0),
                    max_confirmations=max(confs, 0),
                    opened_at=now,
                    amount=amounts[txid],
                )
                for txid, confs in found.items()
            ],
            ignore_conflicts=True,
        )
        _report_found(wallet, found)


def _report_found(wallet: Wallet, found) -> None:
    """deposit.seen for the rows found, in their transaction (one recorded meanwhile by the
    poller is seen once)."""
    if found:
        ids = NetworkTransaction.objects.filter(
            wallet=wallet, type=NetworkTransaction.Type.DEPOSIT, txid__in=list(found)
        ).values_list("pk", flat=True)
        deposits_changed.send(NetworkTransaction, ids=list(ids), using="default")


def rescan_addresses(
    currency: Currency | None = None, page_size: int = 1000, progress_factory=None, *, by
) -> dict:
    """Rescan every enabled wallet (of one currency): {wallet name: result}."""
    actors.require(by, RESCAN_PERM)
    wallets = Wallet.objects.active().select_related("currency")
    if currency is not None:
        wallets = wallets.filter(currency=currency)
    results = {}
    for wallet in wallets:
        bar = progress_factory(wallet) if progress_factory else None
        try:
            results[wallet.name] = rescan_wallet(
                wallet, page_size, progress=bar.update if bar else None
            )
        finally:
            if bar:
                bar.close()
    return results


def queue_rescan(wallets, *, by) -> int:
    """The operator's "Rescan now": one background task per wallet; the result lands on the
    wallet's page when done. Returns how many were queued."""
    from django_q.tasks import async_task

    actors.require(by, RESCAN_PERM)
    wallets = list(wallets)
    for wallet in wallets:
        async_task(
            "ledger.tasks.rescan_wallet_task",
            wallet.pk,
            task_name=f"rescan {wallet.name}",
            group="rescan",
        )
        actors.log_action(by, wallet, "Rescan queued")
    return len(wallets)


def rerun_rescan(wallet_id, *args, by, **kwargs) -> bool:
    """A re-run of a queued rescan from the task records: a new "Rescan now" by the person
    re-running it."""
    return queue_rescan(Wallet.objects.filter(pk=wallet_id), by=by) == 1


def rescan_wallet_task(wallet_id: int) -> dict:
    """django-q2 entry point for the admin's "Rescan now"."""
    return rescan_wallet(Wallet.objects.select_related("currency").get(pk=wallet_id))


def scheduled_rescan() -> dict:
    return rescan_addresses(by=actors.SYSTEM)
