"""django-axes' handler with one more rule: a username-wide limit, far above the per-address
one, that a known place passes.

Failures lock the pair (username, address) and the address (AXES_LOCKOUT_PARAMETERS), so
guesses from elsewhere never lock a person out. A username guessed from many addresses (an
IPv6 block has plenty) is locked once its failures in the window reach
LOGIN_USERNAME_MAX_FAILURES, except from an address that user signed in from before (axes'
access log): the person still gets in from where they work.
"""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone


class SignInHandler(AxesDatabaseHandler):
    def is_locked(self, request, credentials=None) -> bool:
        return super().is_locked(request, credentials) or username_locked(request, credentials)


def username_locked(request, credentials) -> bool:
    username = get_client_username(request, credentials)
    if not username:
        return False
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    failures = AccessAttempt.objects.filter(username=username, attempt_time__gte=since).aggregate(
        n=Sum("failures_since_start")
    )["n"]
    if (failures or 0) < settings.LOGIN_USERNAME_MAX_FAILURES:
        return False
    return not known_place(username, getattr(request, "axes_ip_address", None))


def known_place(username, address) -> bool:
    """The user signed in from this address within LOGIN_KNOWN_PLACE_DAYS."""
    if not address:
        return False
    since = timezone.now() - settings.LOGIN_KNOWN_PLACE_AGE
    return AccessLog.objects.filter(
        username=username, ip_address=address, attempt_time__gte=since
    ).exists()
