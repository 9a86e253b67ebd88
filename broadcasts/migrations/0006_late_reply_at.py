from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Coalesce, Now


def mark_late_replies(apps, schema_editor):
    """Broadcasts whose late reply was recorded before the field existed: their note is in
    the last error (the only mark then), so the watch keeps leaving them alone."""
    Broadcast = apps.get_model("broadcasts", "Broadcast")
    Broadcast.objects.filter(last_error__contains="LATE REPLY").update(
        late_reply_at=Coalesce(F("closed_at"), F("opened_at"), Now())
    )


class Migration(migrations.Migration):
    dependencies = [
        ("broadcasts", "0005_withdrawal_rule_labels_in_base_units"),
    ]

    operations = [
        migrations.AddField(
            model_name="broadcast",
            name="late_reply_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(mark_late_replies, migrations.RunPython.noop),
    ]
