"""`manage.py broadcast [--wallet W]`: one Broadcaster run per wallet, printing what happened."""

from django.core.management import BaseCommand, CommandError

from ledger.models import Wallet

from ...services import broadcast_wallets


class Command(BaseCommand):
    help = "Collect queued outgoing transactions into one broadcast per wallet and send it."

    def add_arguments(self, parser):
        parser.add_argument("--wallet", help="Wallet name (default: every enabled wallet)")

    def handle(self, *args, wallet=None, **options):
        wallets = None
        if wallet:
            found = Wallet.objects.filter(name=wallet).select_related("currency").first()
            if found is None:
                raise CommandError(f"no wallet named {wallet!r}")
            wallets = [found]
        results = broadcast_wallets(wallets)
        for result in results:
            self.stdout.write(result.message)
        sent = sum(r.sent for r in results)
        fee = sum(r.fee for r in results)
        self.stdout.write(f"broadcasts sent: {sent}, total fee (base units): {fee}")
        if any(r.refused for r in results):
            # Scripts and cron see that something needs an operator.
            raise SystemExit(2)
