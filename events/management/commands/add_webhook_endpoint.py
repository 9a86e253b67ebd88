from django.core.exceptions import ValidationError
from django.core.management import CommandError

from cryptoadmin.commands import MoneyCommand
from events.endpoints import add_endpoint
from ledger.actors import SYSTEM
from ledger.outbox import TYPES


class Command(MoneyCommand):
    help = (
        "Add a webhook endpoint; prints its signing secret alone on the last line "
        "(shown this once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("url")
        parser.add_argument(
            "--event",
            action="append",
            default=[],
            choices=TYPES,
            metavar="TYPE",
            help="an event type to send (repeat; default: every type)",
        )
        parser.add_argument("--disabled", action="store_true", help="add it switched off")

    def handle(self, url, event=(), disabled=False, **options):
        try:
            endpoint = add_endpoint(url, event, by=SYSTEM, enabled=not disabled)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        types = ", ".join(endpoint.event_types) or "every event type"
        self.stdout.write(f"added webhook endpoint #{endpoint.pk} {endpoint.url} for {types}")
        self.stdout.write(endpoint.secret)
