"""The three roles, as groups. One table (ROLES), used by the latest roles migration and by tests.

A migration that applies a table keeps a frozen copy of it: on a fresh database an older
migration runs before the permissions a newer table names exist. When ROLES changes, add a
migration that applies it, and freeze the table the previous one applied (as ROLES_0002)."""

VIEW = [
    "ledger.view_currency",
    "ledger.view_wallet",
    "ledger.view_account",
    "ledger.view_address",
    "ledger.view_transaction",
    "ledger.view_networktransaction",
    "broadcasts.view_broadcast",
    "broadcasts.view_outgoingtransaction",
    "balances.view_apitoken",
    "balances.view_user_balances",
    "django_q.view_schedule",
    "django_q.view_success",
    "django_q.view_failure",
    "django_q.view_ormq",
    # Who changed money settings, tokens and roles (django-auditlog; secrets are masked in it).
    "auditlog.view_logentry",
    "broadcasts.view_withdrawalrule",
    "ops.view_alert",
    # Events, webhook endpoints (secrets shown only once, to whoever adds them) and deliveries.
    "events.view_event",
    "events.view_webhookendpoint",
    "events.view_delivery",
]
OPERATE = [
    "ledger.check_networktransaction",
    "ledger.close_networktransaction_by_hand",
    "broadcasts.close_broadcast_by_hand",
    "ledger.rescan_wallet",
    "ledger.reconcile_wallet",  # record a reconciliation (a node read and a status write)
    # Four eyes: approve someone else's withdrawal; reject or cancel one (the amount goes to 201).
    "broadcasts.approve_outgoingtransaction",
    "broadcasts.cancel_outgoingtransaction",
]
ADMINISTER = [
    "ledger.import_wallet_balance",
    "broadcasts.queue_outgoingtransaction",
    "balances.add_apitoken",
    "balances.change_apitoken",
    "balances.revoke_apitoken",
    "django_q.add_schedule",
    "django_q.change_schedule",
    "django_q.delete_schedule",
    "ledger.add_currency",
    "ledger.change_currency",
    "ledger.add_wallet",
    "ledger.change_wallet",
    "django_q.add_ormq",  # re-run a project task from the task pages: it queues the task again
    # Money settings: each currency's withdrawal minimum, approval threshold and daily limit.
    "broadcasts.add_withdrawalrule",
    "broadcasts.change_withdrawalrule",
    # Webhook endpoints (URL, event types, enabled, secret rotation) and sending events again.
    "events.add_webhookendpoint",
    "events.change_webhookendpoint",
    "events.replay_event",
]

ROLES = {
    "Viewer": VIEW,
    "Operator": VIEW + OPERATE,
    "Admin": VIEW + OPERATE + ADMINISTER,
}


# What cryptoadmin/migrations/0002_roles.py applied, frozen (see the module's docstring).
_VIEW_0002 = [
    "ledger.view_currency",
    "ledger.view_wallet",
    "ledger.view_account",
    "ledger.view_address",
    "ledger.view_transaction",
    "ledger.view_networktransaction",
    "broadcasts.view_broadcast",
    "broadcasts.view_outgoingtransaction",
    "balances.view_apitoken",
    "balances.view_user_balances",
    "django_q.view_schedule",
    "django_q.view_success",
    "django_q.view_failure",
    "django_q.view_ormq",
]
_OPERATE_0002 = [
    "ledger.check_networktransaction",
    "ledger.close_networktransaction_by_hand",
    "broadcasts.close_broadcast_by_hand",
    "ledger.rescan_wallet",
]
_ADMINISTER_0002 = [
    "ledger.import_wallet_balance",
    "broadcasts.queue_outgoingtransaction",
    "balances.add_apitoken",
    "balances.change_apitoken",
    "balances.revoke_apitoken",
    "django_q.add_schedule",
    "django_q.change_schedule",
    "django_q.delete_schedule",
    "ledger.add_currency",
    "ledger.change_currency",
    "ledger.add_wallet",
    "ledger.change_wallet",
]
ROLES_0002 = {
    "Viewer": _VIEW_0002,
    "Operator": _VIEW_0002 + _OPERATE_0002,
    "Admin": _VIEW_0002 + _OPERATE_0002 + _ADMINISTER_0002,
}


# What cryptoadmin/migrations/0003_roles_reconcile_and_rerun.py applied, frozen likewise.
ROLES_0003 = {
    "Viewer": _VIEW_0002,
    "Operator": _VIEW_0002 + _OPERATE_0002 + ["ledger.reconcile_wallet"],
    "Admin": _VIEW_0002
    + _OPERATE_0002
    + ["ledger.reconcile_wallet"]
    + _ADMINISTER_0002
    + ["django_q.add_ormq"],
}


# What cryptoadmin/migrations/0004_axes_and_audit_roles.py applied, frozen likewise.
_VIEW_0004 = [
    "ledger.view_currency",
    "ledger.view_wallet",
    "ledger.view_account",
    "ledger.view_address",
    "ledger.view_transaction",
    "ledger.view_networktransaction",
    "broadcasts.view_broadcast",
    "broadcasts.view_outgoingtransaction",
    "balances.view_apitoken",
    "balances.view_user_balances",
    "django_q.view_schedule",
    "django_q.view_success",
    "django_q.view_failure",
    "django_q.view_ormq",
    # Who changed money settings, tokens and roles (django-auditlog; secrets are masked in it).
    "auditlog.view_logentry",
]
_OPERATE_0004 = [
    "ledger.check_networktransaction",
    "ledger.close_networktransaction_by_hand",
    "broadcasts.close_broadcast_by_hand",
    "ledger.rescan_wallet",
    "ledger.reconcile_wallet",  # record a reconciliation (a node read and a status write)
]
_ADMINISTER_0004 = [
    "ledger.import_wallet_balance",
    "broadcasts.queue_outgoingtransaction",
    "balances.add_apitoken",
    "balances.change_apitoken",
    "balances.revoke_apitoken",
    "django_q.add_schedule",
    "django_q.change_schedule",
    "django_q.delete_schedule",
    "ledger.add_currency",
    "ledger.change_currency",
    "ledger.add_wallet",
    "ledger.change_wallet",
    "django_q.add_ormq",  # re-run a project task from the task pages: it queues the task again
]
ROLES_0004 = {
    "Viewer": _VIEW_0004,
    "Operator": _VIEW_0004 + _OPERATE_0004,
    "Admin": _VIEW_0004 + _OPERATE_0004 + _ADMINISTER_0004,
}


def sync_roles(apps, roles=None) -> None:
    """Create the groups and set their permissions (idempotent) to `roles` (default: ROLES).
    `apps`: a migration's historical registry, or django.apps.apps."""
    roles = ROLES if roles is None else roles
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; the roles need them now.
    for app_config in apps.get_app_configs():
        had = getattr(app_config, "models_module", None)
        app_config.models_module = had or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = had
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for full in perms:
            app_label, codename = full.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)


# What cryptoadmin/migrations/0005_roles_withdrawals_and_alerts.py applied, frozen likewise.
_VIEW_0005 = [
    "ledger.view_currency",
    "ledger.view_wallet",
    "ledger.view_account",
    "ledger.view_address",
    "ledger.view_transaction",
    "ledger.view_networktransaction",
    "broadcasts.view_broadcast",
    "broadcasts.view_outgoingtransaction",
    "balances.view_apitoken",
    "balances.view_user_balances",
    "django_q.view_schedule",
    "django_q.view_success",
    "django_q.view_failure",
    "django_q.view_ormq",
    # Who changed money settings, tokens and roles (django-auditlog; secrets are masked in it).
    "auditlog.view_logentry",
    "broadcasts.view_withdrawalrule",
    "ops.view_alert",
]
_OPERATE_0005 = [
    "ledger.check_networktransaction",
    "ledger.close_networktransaction_by_hand",
    "broadcasts.close_broadcast_by_hand",
    "ledger.rescan_wallet",
    "ledger.reconcile_wallet",  # record a reconciliation (a node read and a status write)
    # Four eyes: approve someone else's withdrawal; reject or cancel one (the amount goes to 201).
    "broadcasts.approve_outgoingtransaction",
    "broadcasts.cancel_outgoingtransaction",
]
_ADMINISTER_0005 = [
    "ledger.import_wallet_balance",
    "broadcasts.queue_outgoingtransaction",
    "balances.add_apitoken",
    "balances.change_apitoken",
    "balances.revoke_apitoken",
    "django_q.add_schedule",
    "django_q.change_schedule",
    "django_q.delete_schedule",
    "ledger.add_currency",
    "ledger.change_currency",
    "ledger.add_wallet",
    "ledger.change_wallet",
    "django_q.add_ormq",  # re-run a project task from the task pages: it queues the task again
    # Money settings: each currency's withdrawal minimum, approval threshold and daily limit.
    "broadcasts.add_withdrawalrule",
    "broadcasts.change_withdrawalrule",
]

ROLES_0005 = {
    "Viewer": _VIEW_0005,
    "Operator": _VIEW_0005 + _OPERATE_0005,
    "Admin": _VIEW_0005 + _OPERATE_0005 + _ADMINISTER_0005,
}
