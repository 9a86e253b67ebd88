"""Roles gain `ledger.reconcile_wallet` (Operator, Admin: record a reconciliation, now a POST)
and `django_q.add_ormq` (Admin: re-run a project task from the task pages)."""

from django.db import migrations

from cryptoadmin.roles import ROLES_0002, ROLES_0003, sync_roles


def forwards(apps, schema_editor):
    sync_roles(apps, ROLES_0003)


def backwards(apps, schema_editor):
    sync_roles(apps, ROLES_0002)


class Migration(migrations.Migration):
    dependencies = [
        ("cryptoadmin", "0002_roles"),
        ("ledger", "0005_wallet_reconcile_permission"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
