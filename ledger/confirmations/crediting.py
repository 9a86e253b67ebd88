"""Deposits: recorded once per wallet and transaction, and credited exactly once, in the
transaction that claims the row (and closes it at the polling threshold)."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from cryptoadmin import faults

from .. import services
from ..backends.base import TxInfo
from ..models import Account, Address, Currency, NetworkTransaction, Transaction, Wallet
from ..signals import deposits_changed
from .rows import flag

NT = NetworkTransaction


def our_addresses(wallet_id: int, candidates) -> dict[str, Address]:
    wanted = set(candidates)
    if not wanted:
        return {}
    return {
        a.address: a
        for a in Address.objects.filter(
            wallet_id=wallet_id, kind=Address.Kind.RECEIVING, address__in=wanted
        ).select_related("account")
    }


def record_deposits(wallet: Wallet, infos) -> int:
    """Transactions paying this wallet's receiving addresses become its deposit rows, once:
    UNIQUE (wallet, txid, type). A transaction paying two of our wallets is a row of each.
    Existing rows are left alone (ignore_conflicts), hand-closed ones included."""
    paying = {info.txid: info for info in infos if info.received()}
    if not paying:
        return 0
    ours = our_addresses(wallet.pk, {a for info in paying.values() for a in info.received()})
    new = [info for info in paying.values() if any(a in ours for a in info.received())]
    if not new:
        return 0
    known = set(
        NT.objects.filter(
            wallet=wallet, type=NT.Type.DEPOSIT, txid__in=[i.txid for i in new]
        ).values_list("txid", flat=True)
    )
    now = timezone.now()
    rows = [_deposit_row(wallet, i, ours, now) for i in new if i.txid not in known]
    with transaction.atomic():
        created = NT.objects.bulk_create(rows, ignore_conflicts=True)
        if created:
            # deposit.seen with the rows (a row another worker created is reported once).
            deposits_changed.send(
                NT, ids=_ids(wallet, [row.txid for row in created]), using="default"
            )
    return len(created)


def _deposit_row(wallet: Wallet, info: TxInfo, ours: dict, now) -> NetworkTransaction:
    """A new deposit row: what it pays our addresses, and the first of them (display only)."""
    return NT(
        currency_id=wallet.currency_id,
        wallet=wallet,
        txid=info.txid,
        type=NT.Type.DEPOSIT,
        confirmations=max(info.confirmations, 0),
        max_confirmations=max(info.confirmations, 0),
        opened_at=now,
        amount=sum(units for a, units in info.received().items() if a in ours),
        paid_address=next(ours[a] for a in info.received() if a in ours),
    )


def _ids(wallet: Wallet, txids) -> list[int]:
    rows = NT.objects.filter(wallet=wallet, type=NT.Type.DEPOSIT, txid__in=list(txids))
    return list(rows.values_list("pk", flat=True))


def credit_deposit(row: NetworkTransaction, info: TxInfo, currency: Currency) -> int:
    """Credit each of this wallet's addresses the transaction pays, exactly once, and close the
    row if it is at the polling threshold, all in one transaction. Returns 1 if this call credited.

    The claim requires the row still open and uncredited: a row closed by hand, or credited by
    another worker, is 0 rows and nothing is written."""
    ours = our_addresses(row.wallet_id, info.received())
    if not ours:
        _flag_unpayable(row)
        return 0
    network = services.system_account(Wallet.objects.get(pk=row.wallet_id), Account.Code.NETWORK)
    now = timezone.now()
    claim = {"credited_at": now}
    if info.confirmations >= currency.polling_threshold:
        claim.update(state=NT.State.CLOSED, state_changed_at=now, closed_at=now)
    try:
        with transaction.atomic():
            # The claim: whoever flips credited_at first credits; everyone else sees 0 rows.
            claimed = NT.objects.filter(
                pk=row.pk, credited_at__isnull=True, state=NT.State.OPEN
            ).update(**claim)
            if not claimed:
                return 0
            _post_credits(network, ours, row, info)
            faults.point("credit.before_commit")
    except IntegrityError:
        # The UNIQUE (network transaction, address) backstop fired: someone else credited.
        return 0
    faults.point("credit.after_commit")
    for field, value in claim.items():
        setattr(row, field, value)
    return 1


def _post_credits(network: Account, ours: dict, row: NetworkTransaction, info: TxInfo) -> None:
    """Each of our addresses the transaction pays, credited; then deposit.credited (after its
    confirmations, at the node's count) in the same transaction."""
    for address, amount in info.received().items():
        if address in ours:
            services.post(
                network,
                ours[address].account,
                amount,
                Transaction.Kind.DEPOSIT,
                network_transaction_id=row.pk,
                address=ours[address],
                label=f"deposit {row.txid[:16]}",
            )
    deposits_changed.send(
        NT, ids=[row.pk], confirmations={row.pk: info.confirmations}, using="default"
    )


def _flag_unpayable(row: NetworkTransaction) -> None:
    """A deposit due a credit that pays none of its wallet's receiving addresses (one was
    removed or changed kind): it stays polled and flagged until an operator closes it by hand."""
    reason = "due a credit but pays none of this wallet's receiving addresses: close it by hand"
    if row.flagged and reason in row.flag_reason:
        return
    flag(row, reason)
    NT.objects.polled().filter(pk=row.pk).update(flagged=True, flag_reason=row.flag_reason)


CREDIT_BATCH = 2000  # deposits credited per database transaction


def credit_deposits(pairs, currency: Currency) -> list[NetworkTransaction]:
    """Credit many deposits of one wallet, CREDIT_BATCH per database transaction: the rows
    still open and uncredited are locked and claimed together, their ledger entries appended in
    one INSERT, those at the polling threshold closed, in that transaction. The same rule as
    credit_deposit (which a single deposit, or a batch the UNIQUE backstop refuses, goes
    through): a row closed by hand or credited elsewhere meanwhile is left alone. Returns the
    rows this call credited."""
    credited = []
    for start in range(0, len(pairs), CREDIT_BATCH):
        chunk = pairs[start : start + CREDIT_BATCH]
        if len(chunk) == 1:
            credited += [row for row, info in chunk if credit_deposit(row, info, currency)]
            continue
        ours = our_addresses(chunk[0][0].wallet_id, {a for _, i in chunk for a in i.received()})
        payable = []
        for row, info in chunk:
            if any(address in ours for address in info.received()):
                payable.append((row, info))
            else:
                _flag_unpayable(row)
        try:
            credited += _credit_together(payable, ours, currency)
        except IntegrityError:
            # The UNIQUE backstop: someone else credited one of them; each on its own then.
            credited += [row for row, info in payable if credit_deposit(row, info, currency)]
    return credited


def _credit_together(payable, ours, currency: Currency) -> list[NetworkTransaction]:
    if not payable:
        return []
    wallet = Wallet.objects.get(pk=payable[0][0].wallet_id)
    network = services.system_account(wallet, Account.Code.NETWORK)
    now = timezone.now()
    with transaction.atomic():
        taken = _claim(payable, currency, now)
        services.post_many(_deposit_credits(taken, ours, network))
        if taken:  # deposit.credited (after its confirmations) with the credits, as one at a time
            deposits_changed.send(
                NT,
                ids=[row.pk for row, _ in taken],
                confirmations={row.pk: info.confirmations for row, info in taken},
                using="default",
            )
        for _ in taken:  # once per deposit, as one at a time: a crash after the n-th of them
            faults.point("credit.before_commit")
    for _ in taken:
        faults.point("credit.after_commit")
    for row, info in taken:
        row.credited_at = now
        if info.confirmations >= currency.polling_threshold:
            row.state, row.state_changed_at, row.closed_at = NT.State.CLOSED, now, now
    return [row for row, _ in taken]


def _claim(payable, currency: Currency, now) -> list:
    # The claim: rows locked, then only those still open and uncredited are taken (a
    # worker that waited on the lock sees them credited and takes none).
    claimed = set(
        NT.objects.select_for_update()
        .filter(pk__in=[row.pk for row, _ in payable], credited_at__isnull=True)
        .filter(state=NT.State.OPEN)
        .values_list("pk", flat=True)
    )
    taken = [(row, info) for row, info in payable if row.pk in claimed]
    closing = [row.pk for row, info in taken if info.confirmations >= currency.polling_threshold]
    NT.objects.filter(pk__in=claimed).update(credited_at=now)
    NT.objects.filter(pk__in=closing).update(
        state=NT.State.CLOSED, state_changed_at=now, closed_at=now
    )
    return taken


def _deposit_credits(taken, ours, network) -> list[Transaction]:
    return [
        Transaction(
            currency_id=network.currency_id,
            source=network,
            destination=ours[address].account,
            amount=amount,
            kind=Transaction.Kind.DEPOSIT,
            network_transaction_id=row.pk,
            address=ours[address],
            label=f"deposit {row.txid[:16]}",
        )
        for row, info in taken
        for address, amount in info.received().items()
        if address in ours
    ]
