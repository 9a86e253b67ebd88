"""Who may close an interrupted broadcast by hand, and when."""

from django.utils import timezone

from cryptoadmin.errors import CloseRefused
from ledger import actors

from .models import Broadcast

CLOSE_PERM = "broadcasts.close_broadcast_by_hand"


def check_closable(broadcast: Broadcast, user, reason: str):
    actors.require(user, CLOSE_PERM)
    if actors.person(user) is None:
        raise CloseRefused(
            "a close by hand names the person who checked: the system cannot close one"
        )
    if not (reason or "").strip():
        raise CloseRefused("give a reason")
    broadcast.refresh_from_db()
    if broadcast.state != Broadcast.State.OPENED:
        raise CloseRefused(
            f"broadcast #{broadcast.pk} is {broadcast.get_state_display()}, not interrupted"
        )
    if broadcast.in_flight:
        raise CloseRefused(
            f"broadcast #{broadcast.pk} is still sending (its lease runs until "
            f"{timezone.localtime(broadcast.sending_until):%H:%M:%S}): wait for the node's answer"
        )


def may_close(user) -> bool:
    """Whether to offer the close-by-hand pages and buttons; the services check again."""
    return actors.allowed(user, CLOSE_PERM)
