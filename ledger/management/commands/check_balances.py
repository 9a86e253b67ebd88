import sys

from cryptoadmin.commands import MoneyCommand
from ledger.services import balance_differences


class Command(MoneyCommand):
    help = (
        "Recompute every account's balance from the ledger rows and compare it with its "
        "running total; exit 1 and list the accounts if any differ."
    )

    def handle(self, **options):
        differences = balance_differences()
        for d in differences:
            self.stdout.write(
                f"account {d['account_id']}: rows say {d['from_rows']}, "
                f"running total says {d['running_total']} "
                f"(difference {d['running_total'] - d['from_rows']})"
            )
        if differences:
            self.stderr.write(f"{len(differences)} account(s) differ from their ledger rows.")
            sys.exit(1)
        self.stdout.write("Every running total agrees with the ledger rows.")
