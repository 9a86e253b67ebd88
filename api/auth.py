"""Bearer authentication with one scope per operation: `auth=scoped("transfers:write")`.

The token lookup is the GraphQL query's (balances.auth.live_token: hashed, revocable, last use
recorded); a valid token without the scope gets 403 `missing_scope`."""

from ninja.security import HttpBearer

from balances.auth import Denied, live_token
from balances.models import SCOPES

from .errors import ApiError


class ScopedBearer(HttpBearer):
    def __init__(self, scope: str):
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope
        super().__init__()

    def __call__(self, request):
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>")
        return self.authenticate(request, value.strip())

    def authenticate(self, request, token):
        try:
            found = live_token(token)
        except Denied as denied:
            code = "unauthenticated" if denied.status == 401 else "token_revoked"
            raise ApiError(denied.status, code, denied.message) from None
        if not found.has_scope(self.scope):
            raise ApiError(403, "missing_scope", f"this API token lacks the scope {self.scope}")
        request.api_token = found
        return found


def scoped(scope: str) -> ScopedBearer:
    return ScopedBearer(scope)
