"""API tokens for the GraphQL query and the HTTP API. Only a SHA-256 of the token is stored: the
raw token is shown once, when it is issued. Each token carries the scopes chosen then."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "cab_"

BALANCES_READ = "balances:read"
# Every scope a token can carry, with what it opens; the contract of /api/v1/ names them.
SCOPES = {
    BALANCES_READ: "read balances (the GraphQL query)",
    "addresses:write": "create deposit addresses",
    "withdrawals:write": "request withdrawals",
    "withdrawals:read": "read withdrawals",
    "transfers:write": "move money between user accounts",
    "events:read": "read the events feed",
}


def default_scopes() -> list[str]:
    # Tokens from before scopes existed only ever read balances.
    return [BALANCES_READ]


def hash_token(raw: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough (no dictionary to guard against).
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    name = models.CharField(max_length=100, help_text="Who or what uses it, e.g. 'wallets app'")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="First characters, to recognise a token"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=default_scopes, help_text="What the token may do")

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]
        permissions = [
            ("revoke_apitoken", "Can revoke API tokens"),
            ("view_user_balances", "Can look up user balances"),
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or ())

    @classmethod
    def issue(cls, name: str, created_by=None, scopes=None) -> tuple["ApiToken", str]:
        """A new token and its raw value (not stored anywhere)."""
        scopes = sorted(set(default_scopes() if scopes is None else scopes))
        unknown = [scope for scope in scopes if scope not in SCOPES]
        if unknown or not scopes:
            raise ValueError(f"unknown scopes {unknown}" if unknown else "no scope given")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            name=name,
            token_hash=hash_token(raw),
            prefix=raw[:10],
            created_by=created_by,
            scopes=scopes,
        )
        return token, raw
