"""Viewer, Operator and Admin groups with their permissions (see cryptoadmin/roles.py)."""

from django.db import migrations

from cryptoadmin.roles import ROLES_0002, sync_roles


def forwards(apps, schema_editor):
    # The table as it was when this migration was written: later permissions do not exist yet here.
    sync_roles(apps, ROLES_0002)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES_0002)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cryptoadmin", "0001_login_failure"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("ledger", "0004_network_transaction_check_permission"),
        ("broadcasts", "0001_initial"),
        ("balances", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
