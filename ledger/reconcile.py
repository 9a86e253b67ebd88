"""Node against books: what the wallet holds on chain versus what the books say it holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from django.db.models import Sum
from django.utils import timezone

from cryptoadmin import faults

from . import actors, services
from .models import Account, Address, NetworkTransaction, Transaction, Wallet


@dataclass
class Reconciliation:
    wallet_id: int
    node_balance: int  # minconf 0: what the node's wallet holds, pending included
    books_balance: int  # services.wallet_books_balance: users + fees, pending outgoing included
    uncredited: (
        int  # received on our addresses, not (yet) credited: neither imported nor counted twice
    )
    users_balance: int = 0
    pending_outgoing: int = 0
    fees: int = 0
    missing_deposits: list[dict] = field(default_factory=list)  # node has, books lack
    checked_at: str = ""

    @property
    def unaccounted(self) -> int:
        """Coins on the node whose owner the books do not know (negative: books hold more)."""
        return self.node_balance - self.books_balance - self.uncredited

    def as_dict(self):
        return {**asdict(self), "unaccounted": self.unaccounted}

    @classmethod
    def from_dict(cls, data: dict) -> Reconciliation:
        """The result recorded on the wallet (as_dict), to show without asking the node again."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


RECONCILE_PERM = "ledger.reconcile_wallet"
# Addresses of the node's reply looked up per query (three queries per batch).
RECONCILE_BATCH = 2000


def reconcile(wallet: Wallet) -> Reconciliation:
    """Ask the node and compare with the books; writes nothing (see record_reconciliation)."""
    node_balance, received = node_figures(wallet.get_backend())
    return compare(wallet, node_balance, received)


def node_figures(backend) -> tuple[int, list]:
    """What reconciling asks the node: its balance (pending included) and what each address
    received. No database here, so the home page can ask several nodes in parallel threads."""
    return backend.get_balance(minconf=0), backend.list_received_by_address(minconf=0)


def compare(wallet: Wallet, node_balance: int, received: list) -> Reconciliation:
    """The node's figures against the books: the one computation of the difference, used by
    the reconcile page, its command and the admin home page."""
    uncredited, missing = 0, []
    # Only what the node reports is looked up, in batches: the cost follows the node's reply,
    # never the number of deposits or addresses the books have collected over the years.
    for start in range(0, len(received), RECONCILE_BATCH):
        batch = received[start : start + RECONCILE_BATCH]
        ours = dict(
            Address.objects.filter(
                wallet=wallet,
                kind=Address.Kind.RECEIVING,
                address__in=[row.address for row in batch],
            ).values_list("address", "id")
        )
        credited = dict(
            Transaction.objects.filter(
                kind=Transaction.Kind.DEPOSIT, address_id__in=list(ours.values())
            )
            .values("address_id")
            .annotate(s=Sum("amount"))
            .values_list("address_id", "s")
        )
        reported = {t for row in batch if row.address in ours for t in row.txids}
        known_txids = set(
            NetworkTransaction.objects.filter(
                wallet=wallet, type=NetworkTransaction.Type.DEPOSIT, txid__in=list(reported)
            ).values_list("txid", flat=True)
        )
        for row in batch:
            address_id = ours.get(row.address)
            if address_id is None:
                # Change and addresses the books never gave out: part of the unaccounted balance.
                continue
            gap = row.amount - credited.get(address_id, 0)
            if gap > 0:
                uncredited += gap
            unknown = [t for t in row.txids if t not in known_txids]
            if unknown:
                missing.append(
                    {
                        "address": row.address,
                        "txids": unknown,
                        "received": row.amount,
                        "credited": credited.get(address_id, 0),
                    }
                )
    books = services.wallet_books_balance(wallet)
    system = services.system_accounts(wallet)
    fees = services.balance(system[Account.Code.FEES])
    pending = services.total_of_users(wallet.currency_id, Account.Code.WITHDRAW_LOCKED)
    result = Reconciliation(
        wallet_id=wallet.pk,
        node_balance=node_balance,
        books_balance=books,
        uncredited=uncredited,
        users_balance=books - fees,
        pending_outgoing=pending,
        fees=fees,
        missing_deposits=missing,
        checked_at=timezone.now().isoformat(),
    )
    return result


def record_reconciliation(wallet: Wallet, *, by) -> Reconciliation:
    """The operator's "Reconcile now": reconcile, then record the result on the wallet (what
    the reconciliation page shows without asking the node again)."""
    actors.require(by, RECONCILE_PERM)
    result = reconcile(wallet)
    faults.point("reconcile.before_record")  # the node was asked; nothing recorded yet
    Wallet.objects.filter(pk=wallet.pk).update(
        last_reconciled_at=timezone.now(), last_reconciliation=result.as_dict()
    )
    c = wallet.currency
    actors.log_action(by, wallet, f"Reconciled: difference {c.amount(result.unaccounted)}")
    return result
