"""`manage.py broadcast [--wallet W]`: one Broadcaster run per wallet, printing what happened."""

from django.core.management import CommandError

from cryptoadmin.commands import MoneyCommand
from ledger.models import Wallet

from ...broadcaster import broadcast_wallets


class Command(MoneyCommand):
    help = "Collect queued outgoing transactions into one broadcast per wallet and send it."

    def add_arguments(self, parser):
        parser.add_argument("--wallet", help="Wallet name (default: every enabled wallet)")

    def handle(self, *args, wallet=None, **options):
        # The same list broadcast_wallets would take, resolved here: one result per wallet.
        wallets = list(Wallet.objects.active().select_related("currency"))
        if wallet:
            found = Wallet.objects.filter(name=wallet).select_related("currency").first()
            if found is None:
                raise CommandError(f"no wallet named {wallet!r}")
            wallets = [found]
        results = broadcast_wallets(wallets)
        for result in results:
            self.stdout.write(result.message)
        sent = sum(r.sent for r in results)
        # Fees only add up within one currency: one total per currency that paid any.
        fees = {}
        for each, result in zip(wallets, results, strict=True):
            if result.fee:
                fees[each.currency] = fees.get(each.currency, 0) + result.fee
        total = ", ".join(c.amount(units) for c, units in fees.items()) or "none"
        self.stdout.write(f"broadcasts sent: {sent}, total fee: {total}")
        if any(r.refused for r in results):
            # Scripts and cron see that something needs an operator.
            raise SystemExit(2)
