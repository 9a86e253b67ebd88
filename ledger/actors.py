"""Who runs an operator flow, and the one place its permission is checked.

Every operator flow (close by hand, queue a withdrawal, import, reconcile, rescan, check now)
is a service taking `by=`: a person, whose `has_perm` decides, or `SYSTEM` for management
commands and scheduled tasks (whoever can run them on the server is trusted already). The
admin does not re-check: it calls the service and lets `PermissionDenied` answer 403."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied


class System:
    """The actor of commands and tasks: allowed everything, recorded as nobody."""

    pk = None

    def has_perm(self, perm: str, obj=None) -> bool:
        return True

    def __str__(self):
        return "system"


SYSTEM = System()


def allowed(by, perm: str) -> bool:
    """For pages that only show or hide a button; the service itself calls `require`."""
    return by is not None and by.has_perm(perm)


def require(by, perm: str) -> None:
    if not allowed(by, perm):
        raise PermissionDenied(f"{by or 'nobody'} may not do this: needs {perm}")


def person(by):
    """The user to store in created_by / closed_by: None for the system; an actor standing for
    a machine (an API token) names its own user row in `acting_user`."""
    if by is None or isinstance(by, System):
        return None
    return getattr(by, "acting_user", by)


def log_action(by, obj, message: str, *, added: bool = False) -> None:
    """The admin history entry of an operator flow, written by its service so every caller
    leaves the same trace. The system has no user to name: its flows are traced by the row
    itself (closed_by empty, the reason) and the audit log."""
    from django.contrib.admin.models import ADDITION, CHANGE, LogEntry

    who = person(by)
    if who is None:
        return
    flag = ADDITION if added else CHANGE
    LogEntry.objects.log_actions(
        user_id=who.pk, queryset=[obj], action_flag=flag, change_message=message, single_object=True
    )


def signed_in_staff(user) -> bool:
    """A staff session signed in with every factor the deployment requires (OTP_REQUIRED: the
    second factor too): what the admin, /health's details and /metrics open to."""
    from django.conf import settings

    if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return not settings.OTP_REQUIRED or user.is_verified()


def people_actions(obj):
    """The admin history entries of `obj`, oldest first (log_action writes them)."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    return (
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
        )
        .select_related("user")
        .order_by("action_time")
    )
