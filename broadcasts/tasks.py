"""django-q2 entry points: thin, the work is in services."""

from .broadcaster import broadcast_wallets


def broadcast_all_wallets():
    """Every enabled wallet in turn; each run takes its wallet's lock or skips it."""
    return [r.message for r in broadcast_wallets()]
