"""Who may read balances over HTTP: a live API token (Authorization: Bearer) or a staff session
with the balances.view_user_balances permission."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from cryptoadmin.errors import CryptoadminError

from .cache import get_cache
from .models import BALANCES_READ, ApiToken, hash_token

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one UPDATE per token per minute


class Denied(CryptoadminError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bearer_token(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Denied(401, "malformed Authorization header: use 'Bearer <token>'")
    return value.strip()


def live_token(raw: str, cached: bool = False) -> ApiToken:
    """The unrevoked token whose raw value this is (its last use recorded); Denied otherwise.
    `cached`: read from this process's copy of the table (balances/reference.py: no SQL, a
    revocation seen within the balance cache's staleness bound), for the read-only balances
    query; money requests read the row itself."""
    if len(raw) > 200:
        raise Denied(401, "invalid API token")
    token_hash = hash_token(raw)
    if cached:
        token = get_cache().reference.token(token_hash)
    else:
        token = ApiToken.objects.filter(token_hash=token_hash).first()
    if token is None:
        raise Denied(401, "invalid API token")
    if token.revoked_at is not None:
        raise Denied(403, "this API token was revoked")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now  # a cached row too: this process writes again a minute later
    return token


def authenticate(request) -> str:
    """'token' or 'session'; raises Denied(401|403) otherwise."""
    raw = bearer_token(request)
    if raw is not None:
        token = live_token(raw, cached=True)
        if not token.has_scope(BALANCES_READ):
            raise Denied(403, f"this API token lacks the scope {BALANCES_READ}")
        request.api_token = token
        return "token"
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise Denied(401, "authentication required: an API token or a staff session")
    if not (user.is_active and user.is_staff and user.has_perm("balances.view_user_balances")):
        raise Denied(403, "not allowed to read balances")
    if settings.OTP_REQUIRED and not user.is_verified():
        # A password alone opens nothing for staff (issue 13, point 3), this endpoint included.
        raise Denied(403, "sign in with your second factor first")
    return "session"
