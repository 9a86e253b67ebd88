"""`manage.py check_interrupted_broadcasts`: list interrupted broadcasts, and closed ones a late
reply flagged for attention; exit 1 if there are any."""

from cryptoadmin.commands import MoneyCommand

from ...selections import interrupted_broadcasts, needing_attention


class Command(MoneyCommand):
    help = (
        "List broadcasts opened but never closed, and those needing attention after a late reply "
        "(exit status 1 if there are any)."
    )

    def handle(self, *args, **options):
        rows = list(interrupted_broadcasts().select_related("wallet__currency").order_by("id"))
        flagged = list(needing_attention().select_related("wallet__currency").order_by("id"))
        if not rows and not flagged:
            self.stdout.write("no interrupted broadcasts")
            return
        for b in rows:
            self.stdout.write(
                f"#{b.pk} {b.label} wallet {b.wallet.name} opened {b.opened_at:%Y-%m-%d %H:%M:%S} "
                f"{b.transaction_count} outgoing, {b.wallet.currency.amount(b.total)}"
                + (f" last error: {b.last_error}" if b.last_error else "")
            )
        for b in flagged:
            first_line = b.last_error.splitlines()[0] if b.last_error else ""
            self.stdout.write(
                f"#{b.pk} {b.label} wallet {b.wallet.name} {b.get_state_display()}: "
                f"NEEDS ATTENTION: {first_line}"
            )
        if rows:
            self.stderr.write(
                f"{len(rows)} interrupted broadcast(s): close them by hand in the admin"
            )
        if flagged:
            self.stderr.write(
                f"{len(flagged)} broadcast(s) need attention: see their page in the admin"
            )
        raise SystemExit(1)
