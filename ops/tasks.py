"""django-q2 entry points: thin, the work is in ops.alerts."""

from .alerts import run_alerts


def send_alerts():
    return run_alerts()
