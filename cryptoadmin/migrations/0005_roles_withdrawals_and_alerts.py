"""Operators approve, reject and cancel withdrawals (four eyes: never their own); Admins set
each currency's withdrawal rules; every role reads the rules and the alerts."""

from django.db import migrations

from cryptoadmin.roles import ROLES, ROLES_0004, sync_roles


def forwards(apps, schema_editor):
    sync_roles(apps, ROLES)


def backwards(apps, schema_editor):
    sync_roles(apps, ROLES_0004)


class Migration(migrations.Migration):
    dependencies = [
        ("cryptoadmin", "0004_axes_and_audit_roles"),
        ("broadcasts", "0003_withdrawal_approval_rules"),
        ("ops", "0001_alerts"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
