from django.core.management import CommandError

from cryptoadmin.commands import MoneyCommand
from ledger.confirmations.entry_points import update_confirmations
from ledger.models import Currency


class Command(MoneyCommand):
    help = "Poll open network transactions once and print what happened."

    def add_arguments(self, parser):
        parser.add_argument("--currency", help="currency code (default: every enabled currency)")

    def handle(self, currency=None, **options):
        currencies = Currency.objects.filter(enabled=True)
        if currency:
            currencies = Currency.objects.filter(code=currency.upper())
            if not currencies:
                raise CommandError(f"Unknown currency {currency!r}.")
        for c in currencies:
            self.stdout.write(f"{c.code}: {update_confirmations(c)}")
