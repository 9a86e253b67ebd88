"""What bitcoind's -walletnotify calls: `manage.py walletnotify CURRENCY %s`.

Bad input is a clear message and exit code 2, with nothing written."""

import sys

from cryptoadmin.commands import MoneyCommand
from ledger.backends import BackendError
from ledger.confirmations.entry_points import update_one
from ledger.models import TXID_RE, Currency


class Command(MoneyCommand):
    help = "Update one transaction at once (bitcoind's walletnotify fast path)."

    def add_arguments(self, parser):
        parser.add_argument("currency")
        parser.add_argument("txid")

    def handle(self, currency, txid, **options):
        found = Currency.objects.filter(code=currency.upper()).first()
        if found is None:
            self.stderr.write(f"walletnotify: unknown currency {currency!r}")
            sys.exit(2)
        txid = txid.strip().lower()
        if not TXID_RE.match(txid):
            self.stderr.write(
                f"walletnotify: {txid!r} is not a transaction id (64 hexadecimal characters)"
            )
            sys.exit(2)
        try:
            summary = update_one(found, txid)
        except BackendError as exc:
            # The scheduler's poll is the safety net: say so, fail softly for bitcoind.
            self.stderr.write(f"walletnotify: node error, the next poll will pick it up: {exc}")
            sys.exit(1)
        self.stdout.write(f"{found.code} {txid}: {summary}")
