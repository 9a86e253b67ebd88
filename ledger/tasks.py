"""django-q2 entry points: thin wrappers over the services."""

from .confirmations.entry_points import poll_all_currencies  # noqa: F401
from .reconcile import reconcile_wallet_task  # noqa: F401
from .rescan import rescan_wallet_task, scheduled_rescan  # noqa: F401

# A task queued for a person is re-run (the scheduler's task records) through its flow, as
# the person re-running it: func -> "module.function(*stored args, by=person) -> queued?".
RERUNS = {
    "ledger.tasks.reconcile_wallet_task": "ledger.reconcile.rerun_reconciliation",
    "ledger.tasks.rescan_wallet_task": "ledger.rescan.rerun_rescan",
}
