"""Import an existing wallet's unaccounted balance into the books.

The first version subtracted only the users' balances, so coins queued for withdrawal
(still in the wallet, already debited from 201) were imported a second time. Here the
unaccounted amount is node balance - books (which keep pending outgoing on 204) - deposits
received but not yet credited (the tracker will credit those)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from cryptoadmin import faults

from . import actors, services
from .models import Account, Transaction, Wallet
from .reconcile import Reconciliation, reconcile


class WalletImportError(services.LedgerError):
    pass


class NothingToImport(WalletImportError):
    pass


class BooksExceedNode(WalletImportError):
    def __init__(self, difference: int, currency):
        self.difference = difference
        super().__init__(
            f"The books hold {currency.amount(-difference)} more than the node: "
            "that is a reconciliation problem, not an import."
        )


class BroadcastUnsettled(WalletImportError):
    """A broadcast of the wallet may have moved coins the books do not show yet."""

    def __init__(self, ids: list[int], wallet):
        self.ids = ids
        super().__init__(
            f"Wallet {wallet.name} has an unsettled broadcast ("
            + ", ".join(f"broadcast #{i}" for i in ids)
            + "): the node may already have paid what the books still hold, so the unaccounted "
            "amount is not known. It must be settled first (sent and booked with its fee, or "
            "closed by hand); nothing was imported."
        )


class AmountChanged(WalletImportError):
    def __init__(self, previous: int, current: int, currency):
        self.previous, self.current = previous, current
        super().__init__(
            f"The unaccounted amount changed from {currency.amount(previous)} to "
            f"{currency.amount(current)} since it was shown: check it and confirm again."
        )


def check_target(wallet: Wallet, account: Account) -> None:
    if account.currency_id != wallet.currency_id:
        raise WalletImportError(
            f"Account {account.pk} is a {account.currency.code} account; the wallet holds "
            f"{wallet.currency.code}."
        )
    if account.wallet_id is not None and account.code in (
        Account.Code.NETWORK,
        Account.Code.IMPORT,
    ):
        raise WalletImportError(
            "Coins cannot be imported onto the network or import system account itself."
        )


IMPORT_PERM = "ledger.import_wallet_balance"


def unsettled_sends(wallet: Wallet, opened_since=None) -> list[int]:
    """Sends whose effect on the node the books may not hold, as the apps that send report
    them (`<app>/unsettled.py`: `unsettled(wallet, opened_since)`, found by the registry):
    the books build on nothing above them, so they ask instead of importing those apps."""
    from cryptoadmin.registry import collect

    return collect("unsettled", "unsettled", wallet, opened_since)


def check_settled(wallet: Wallet, opened_since=None) -> None:
    ids = unsettled_sends(wallet, opened_since)
    if ids:
        raise BroadcastUnsettled(ids, wallet)


def preview(wallet: Wallet) -> Reconciliation:
    return reconcile(wallet)


def check_importable(wallet: Wallet, amount: int) -> None:
    """The unaccounted amount can be imported: more than nothing, and the books not over
    the node."""
    if amount == 0:
        raise NothingToImport(f"Nothing to import: the node and the books agree for {wallet.name}.")
    if amount < 0:
        raise BooksExceedNode(amount, wallet.currency)


# The operator's flow, for the admin page and the command alike: preview (nothing written),
# then confirm with the amount the operator saw; a changed amount is shown again.


def preview_import(wallet: Wallet, account: Account, *, by) -> Reconciliation:
    actors.require(by, IMPORT_PERM)
    check_target(wallet, account)
    check_settled(wallet)
    return preview(wallet)


def new_user_target(wallet: Wallet, user_id: str) -> Account:
    """The balance account a first import opens for `user_id` (a fresh install's treasury):
    theirs if it exists, else an unsaved one that confirm_import creates with the import."""
    found = Account.objects.filter(
        user_id=user_id, currency_id=wallet.currency_id, code=Account.Code.BALANCE
    ).first()
    return found or Account(user_id=user_id, currency=wallet.currency, code=Account.Code.BALANCE)


def confirm_import(wallet: Wallet, account: Account, expected: int, *, by) -> Transaction:
    """`account` unsaved (new_user_target): the user's accounts are opened in the import's
    own transaction, so a refused import leaves no account behind."""
    actors.require(by, IMPORT_PERM)
    entry = import_unaccounted_balance(
        wallet.pk,
        account.pk,
        expected,
        user=actors.person(by),
        new_user_id=account.user_id if account.pk is None else None,
    )
    c = wallet.currency
    actors.log_action(
        by,
        wallet,
        f"Imported {c.amount(entry.amount)} to {entry.destination} ({entry.label}).",
    )
    return entry


def _target(wallet: Wallet, account_id, new_user_id) -> Account:
    """The import's account: a new user's balance account is opened in the import's own
    transaction (rolled back with it)."""
    if new_user_id:
        return services.user_account(new_user_id, wallet.currency)
    return Account.objects.select_related("currency").get(pk=account_id)


def import_unaccounted_balance(
    wallet_id: int,
    account_id: int | None,
    expected: int | None = None,
    user=None,
    new_user_id: str | None = None,
) -> Transaction:
    """One import transaction for exactly the unaccounted amount, or an error that wrote nothing.

    The wallet row is locked while the amount is computed and booked, so two admins
    confirming at once import once: the second sees nothing left to import. Refused while a
    broadcast of the wallet is unsettled, checked before the node is asked and again after
    (a broadcast opened meanwhile makes the node's answer and the books disagree)."""
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().select_related("currency").get(pk=wallet_id)
        account = _target(wallet, account_id, new_user_id)
        check_target(wallet, account)
        started = timezone.now()
        check_settled(wallet)
        amount = reconcile(wallet).unaccounted
        check_settled(wallet, opened_since=started)
        check_importable(wallet, amount)
        if expected is not None and expected != amount:
            raise AmountChanged(expected, amount, wallet.currency)
        number = (
            Transaction.objects.filter(kind=Transaction.Kind.IMPORT, destination=account).count()
            + 1
        )
        booked = services.post(
            services.system_account(wallet, Account.Code.IMPORT),
            account,
            amount,
            Transaction.Kind.IMPORT,
            label=f"Import #{number} from wallet {wallet.name}",
            created_by=user,
        )
        faults.point("import.before_commit")
        return booked
