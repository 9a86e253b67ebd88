"""Every role reads events, webhook endpoints and deliveries; Admins manage endpoints and
send events again."""

from django.db import migrations

from cryptoadmin.roles import ROLES, ROLES_0005, sync_roles


def forwards(apps, schema_editor):
    sync_roles(apps, ROLES)


def backwards(apps, schema_editor):
    sync_roles(apps, ROLES_0005)


class Migration(migrations.Migration):
    dependencies = [
        ("cryptoadmin", "0005_roles_withdrawals_and_alerts"),
        ("events", "0001_outbox_and_webhooks"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
