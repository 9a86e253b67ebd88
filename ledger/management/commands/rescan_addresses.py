from django.core.management import CommandError
from tqdm import tqdm

from cryptoadmin.commands import MoneyCommand
from ledger.actors import SYSTEM
from ledger.backends import BackendError
from ledger.models import Currency
from ledger.rescan import rescan_addresses


class Command(MoneyCommand):
    help = "Scan our receiving addresses on the node for deposits the books missed."

    def add_arguments(self, parser):
        parser.add_argument("--currency", help="currency code, e.g. BTC (default: all enabled)")
        parser.add_argument("--page-size", type=int, default=1000)

    def handle(self, currency=None, page_size=1000, **options):
        if page_size < 2:
            raise CommandError("--page-size must be at least 2")
        selected = None
        if currency:
            selected = Currency.objects.filter(code=currency.upper()).first()
            if selected is None:
                raise CommandError(f"Unknown currency {currency!r}.")

        def bar(wallet):
            return tqdm(
                total=wallet.get_backend().history_size(),
                desc=wallet.name,
                unit="tx",
                file=self.stderr._out,
                disable=None,
            )

        try:
            results = rescan_addresses(selected, page_size, progress_factory=bar, by=SYSTEM)
        except BackendError as exc:
            raise CommandError(f"The node could not be asked: {exc}") from None
        for name, result in results.items():
            self.stdout.write(
                f"{name}: {result['found']} missed deposit(s) found "
                f"({result['receives_on_our_addresses']} receives on {result['addresses']} "
                "addresses)"
            )
        if not results:
            self.stdout.write("No enabled wallet to rescan.")
