"""The three roles, as groups. One table, used by the data migration and by tests."""

VIEW = [
    "ledger.view_currency", "ledger.view_wallet", "ledger.view_account", "ledger.view_address",
    "ledger.view_transaction", "ledger.view_networktransaction",
    "broadcasts.view_broadcast", "broadcasts.view_outgoingtransaction",
    "balances.view_apitoken", "balances.view_user_balances",
    "django_q.view_schedule", "django_q.view_success", "django_q.view_failure", "django_q.view_ormq",
]
OPERATE = [
    "ledger.close_networktransaction_by_hand", "broadcasts.close_broadcast_by_hand", "ledger.rescan_wallet",
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
