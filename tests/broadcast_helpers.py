"""Helpers for broadcast tests."""

from datetime import timedelta

from django.utils import timezone


def end_lease(broadcast):
    """What waiting out the send's lease does: the broadcast is interrupted from now on."""
    from broadcasts.models import Broadcast

    Broadcast.objects.filter(pk=broadcast.pk).update(
        sending_until=timezone.now() - timedelta(seconds=1)
    )
    broadcast.refresh_from_db()
    return broadcast
