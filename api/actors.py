"""The actor of an API request: its token. Services take it as `by=` like a person's; what
it may do follows the token's scopes, and what it does is recorded under the token's own user
row (never able to sign in), so the admin's history and `created_by` name the token."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from balances.models import ApiToken
from broadcasts.withdrawals import QUEUE_PERM

# The permissions a scope carries into the services it calls.
SCOPE_PERMS = {"withdrawals:write": {QUEUE_PERM}}


def token_user(token: ApiToken):
    """The token's user row: inactive, no password, never staff; its full name is the token's."""
    users = get_user_model()
    name = f"API token {token.name}"[:150]
    user, created = users.objects.get_or_create(
        username=f"api-token-{token.pk}",
        defaults={"is_active": False, "first_name": name},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.first_name != name:
        users.objects.filter(pk=user.pk).update(first_name=name)
    return user


class TokenActor:
    def __init__(self, token: ApiToken):
        self.token = token
        self.acting_user = token_user(token)
        self.pk = self.acting_user.pk

    def has_perm(self, perm: str, obj=None) -> bool:
        return any(perm in SCOPE_PERMS.get(scope, ()) for scope in self.token.scopes)

    def __str__(self):
        return f"API token {self.token.name}"


def actor(request) -> TokenActor:
    return TokenActor(request.api_token)
