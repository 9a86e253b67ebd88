"""The three roles, as groups. One table, used by the data migration and by tests."""

VIEW = [
    "ledger.view_currency", "ledger.view_wallet", "ledger.view_account", "ledger.view_address",
    "ledger.view_transaction", "ledger.view_networktransaction",
    "broadcasts.view_broadcast", "broadcasts.view_outgoingtransaction",
    "balances.view_apitoken", "balances.view_user_balances",
    "django_q.view_schedule", "django_q.view_success", "django_q.view_failure", "django_q.view_ormq",
    # Who changed money settings, tokens and roles (django-auditlog; secrets are masked in it).
    "auditlog.view_logentry",
]
OPERATE = [
    "ledger.check_networktransaction", "ledger.close_networktransaction_by_hand",
    "broadcasts.close_broadcast_by_hand", "ledger.rescan_wallet",
]
ADMINISTER = [
    "ledger.import_wallet_balance", "broadcasts.queue_outgoingtransaction",
    "balances.add_apitoken", "balances.change_apitoken", "balances.revoke_apitoken",
    "django_q.add_schedule", "django_q.change_schedule", "django_q.delete_schedule",
    "ledger.add_currency", "ledger.change_currency", "ledger.add_wallet", "ledger.change_wallet",
]

ROLES = {
    "Viewer": VIEW,
    "Operator": VIEW + OPERATE,
    "Admin": VIEW + OPERATE + ADMINISTER,
}


def sync_roles(apps) -> None:
    """Create the groups and set their permissions (idempotent). `apps`: a migration's
    historical registry, or django.apps.apps."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; the roles need them now.
    for app_config in apps.get_app_configs():
        had = getattr(app_config, "models_module", None)
        app_config.models_module = had or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = had
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for full in perms:
            app_label, codename = full.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
