"""Issue 13: login failures are counted by django-axes now, so the hand-written LoginFailure
table goes; every role may read the audit log (django-auditlog), so the roles are synced again."""

from django.db import migrations

from cryptoadmin.roles import ROLES_0003, ROLES_0004, sync_roles


def forwards(apps, schema_editor):
    sync_roles(apps, ROLES_0004)


def backwards(apps, schema_editor):
    sync_roles(apps, ROLES_0003)


class Migration(migrations.Migration):
    dependencies = [
        ("cryptoadmin", "0003_roles_reconcile_and_rerun"),
        ("auditlog", "0017_add_actor_email"),
    ]
    operations = [
        migrations.DeleteModel(name="LoginFailure"),
        migrations.RunPython(forwards, backwards),
    ]
