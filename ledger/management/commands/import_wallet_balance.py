from django.core.management import CommandError

from cryptoadmin.commands import MoneyCommand
from ledger import imports
from ledger.actors import SYSTEM
from ledger.admin_lists import as_id
from ledger.backends import BackendError
from ledger.models import Account, Wallet


class Command(MoneyCommand):
    help = "Put a wallet's unaccounted balance (node minus books) on one account."

    def add_arguments(self, parser):
        parser.add_argument("wallet", help="wallet name or id")
        parser.add_argument("account", help="target account id (see the admin's Accounts list)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, wallet, account, yes, **options):
        wallet = _wallet(wallet)
        try:
            account = Account.objects.select_related("currency").get(pk=int(account))
        except (ValueError, Account.DoesNotExist):
            raise CommandError(f"Unknown account {account!r}: give an account id.") from None
        c = wallet.currency
        try:
            preview = imports.preview_import(wallet, account, by=SYSTEM)
        except (imports.WalletImportError, BackendError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"node balance: {c.amount(preview.node_balance)}\n"
            f"books:        {c.amount(preview.books_balance)}\n"
            f"uncredited:   {c.amount(preview.uncredited)}\n"
            f"unaccounted:  {c.amount(preview.unaccounted)}"
        )
        try:
            imports.check_importable(wallet, preview.unaccounted)
        except imports.NothingToImport:
            self.stdout.write("Nothing to import.")
            return
        except imports.BooksExceedNode as exc:
            raise CommandError(str(exc)) from None
        if not yes:
            if not self.stdin_is_interactive():
                raise CommandError("Not confirmed: run with --yes to import without a prompt.")
            answer = input(
                f"Import {c.amount(preview.unaccounted)} to account {account.pk}? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("Not confirmed: nothing imported.")
        try:
            entry = imports.confirm_import(wallet, account, preview.unaccounted, by=SYSTEM)
        except (imports.WalletImportError, BackendError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(f"{entry.label}: {c.amount(entry.amount)} to account {account.pk}")
        )

    @staticmethod
    def stdin_is_interactive():
        import sys

        return sys.stdin is not None and sys.stdin.isatty()


def _wallet(ref: str) -> Wallet:
    wallets = Wallet.objects.select_related("currency")
    found = wallets.filter(name=ref).first() or (
        wallets.filter(pk=as_id(ref)).first() if as_id(ref) is not None else None
    )
    if found is None:
        raise CommandError(f"Unknown wallet {ref!r}: give a wallet name or id.")
    return found
