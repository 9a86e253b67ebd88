# The wallet's transaction count read with its tip: a count that changed under an unchanged
# tip makes the poller read the unconfirmed transactions (a new deposit) without a block.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0011_reconcile_and_open_list_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="last_tx_count",
            field=models.IntegerField(blank=True, null=True),
        ),
    ]
