"""Indexes the benchmark asked for: reconciliation's credited sum per reported address read
from an index alone, and the open network transactions listed newest first without a sort."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0010_running_totals_and_admin_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="networktransaction",
            index=models.Index(
                condition=models.Q(("state", "open")),
                fields=["opened_at", "id"],
                name="network_tx_open_list_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="transaction",
            index=models.Index(
                condition=models.Q(("kind", "deposit")),
                fields=["address", "amount"],
                name="transaction_deposit_addr_idx",
            ),
        ),
    ]
