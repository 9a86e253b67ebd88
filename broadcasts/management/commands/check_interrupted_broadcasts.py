"""`manage.py check_interrupted_broadcasts`: list interrupted broadcasts; exit 1 if any."""
from django.core.management import BaseCommand

from ...services import interrupted_broadcasts


class Command(BaseCommand):
    help = "List broadcasts opened but never closed (exit status 1 if there are any)."

    def handle(self, *args, **options):
        rows = list(interrupted_broadcasts().select_related("wallet__currency").order_by("id"))
        if not rows:
            self.stdout.write("no interrupted broadcasts")
            return
        for b in rows:
            self.stdout.write(
                f"#{b.pk} {b.label} wallet {b.wallet.name} opened {b.opened_at:%Y-%m-%d %H:%M:%S} "
                f"{b.transaction_count} outgoing, {b.wallet.currency.format(b.total)} {b.wallet.currency.code}"
                + (f" last error: {b.last_error}" if b.last_error else "")
            )
        self.stderr.write(f"{len(rows)} interrupted broadcast(s): close them by hand in the admin")
        raise SystemExit(1)
