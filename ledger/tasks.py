"""django-q2 entry points: thin wrappers over the services."""

from .confirmations.entry_points import poll_all_currencies  # noqa: F401
from .reconcile import reconcile_wallet_task  # noqa: F401
from .rescan import rescan_wallet_task, scheduled_rescan  # noqa: F401
