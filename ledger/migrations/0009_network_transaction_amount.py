from django.db import migrations, models
from django.db.models import OuterRef, Subquery, Sum


def backfill(apps, schema_editor):
    """Rows recorded before the amount was kept: a credited deposit's amount is what was
    credited, a broadcast's is its broadcast's total; uncredited deposits stay empty."""
    NT = apps.get_model("ledger", "NetworkTransaction")
    Transaction = apps.get_model("ledger", "Transaction")
    credited = (
        Transaction.objects.filter(network_transaction=OuterRef("pk"), kind="deposit")
        .values("network_transaction")
        .annotate(s=Sum("amount"))
        .values("s")
    )
    NT.objects.filter(type="deposit", amount__isnull=True).update(amount=Subquery(credited))
    Broadcast = apps.get_model("broadcasts", "Broadcast")
    total = Broadcast.objects.filter(network_transaction=OuterRef("pk")).values("total")[:1]
    NT.objects.filter(type="broadcast", amount__isnull=True).update(amount=Subquery(total))


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0008_network_tx_block_and_wallet_tip"),
        ("broadcasts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="networktransaction",
            name="amount",
            field=models.BigIntegerField(
                blank=True,
                help_text="Base units paid to our addresses (deposit) or sent (broadcast); "
                "empty on rows recorded before it was kept",
                null=True,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
