"""Who changed the money settings (issue 13, point 8): django-auditlog records every change
to these models with the user, the time, the client address and before/after values, and its
LogEntry admin ("Log entries") shows them to anyone with auditlog.view_logentry (every role).

django-auditlog rather than django-pghistory: pghistory records through PostgreSQL triggers,
and this project also runs on SQLite (`make run`); auditlog works on both, masks fields, follows
many-to-many changes and ships its admin. Its price: it listens to model signals, so a
queryset .update() is invisible to it, and the places that update money settings that way
call `record_change` themselves."""

import json

from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from .masking import mask_value
from .signin.clientip import client_ip

MASK = "••••••"


def mask_backend_settings(value: str) -> str:
    """auditlog's mask callable for Wallet.backend_settings (a JSON text): secrets become dots,
    credentials leave URLs, everything else stays readable so a change of node or network shows."""
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return MASK if value else value
    if not isinstance(data, dict):
        return MASK
    return json.dumps(mask_value(data), sort_keys=True)


def mask_all(value: str) -> str:
    return MASK if value else value


def record_change(instance, changes: dict) -> LogEntry:
    """Record a change made by a conditional UPDATE (no model signal fires). `changes`:
    {field: (before, after)}; the actor comes from the request, like auditlog's own entries."""
    return LogEntry.objects.log_create(
        instance,
        action=LogEntry.Action.UPDATE,
        force_log=True,
        changes={
            field: [None if v is None else str(v) for v in pair] for field, pair in changes.items()
        },
    )


class AuditMiddleware(AuditlogMiddleware):
    """auditlog's middleware with the client address taken like the login lock-out takes it:
    X-Forwarded-For only from a trusted proxy (auditlog's own reads the client's first entry)."""

    @staticmethod
    def _get_remote_addr(request):
        return client_ip(request)


# Where events go and what is sent: the secrets never (masked as soon as they are set).
WEBHOOK_ENDPOINT = dict(
    include_fields=["url", "event_types", "enabled", "disabled_reason", "secret"],
    mask_fields=["secret"],
    mask_callable="cryptoadmin.audit.mask_all",
)


def register():
    Wallet = apps.get_model("ledger", "Wallet")
    ApiToken = apps.get_model("balances", "ApiToken")
    auditlog.register(apps.get_model("ledger", "Currency"))
    # A currency's withdrawal rules (minimum, approval threshold, daily total): money settings.
    auditlog.register(apps.get_model("broadcasts", "WithdrawalRule"))
    # The machine's own bookkeeping on a wallet (cursor, last rescan, reconciliation): no setting.
    auditlog.register(
        Wallet,
        include_fields=["name", "currency", "backend", "backend_settings", "enabled"],
        mask_fields=["backend_settings"],
        mask_callable="cryptoadmin.audit.mask_backend_settings",
    )
    # The token's hash is left out: it cannot be reversed, but it identifies a live credential
    # and tells an auditor nothing the prefix does not.
    auditlog.register(
        ApiToken,
        include_fields=[
            "name",
            "prefix",
            "scopes",
            "created_by",
            "created_at",
            "revoked_at",
            "revoked_by",
        ],
    )
    auditlog.register(apps.get_model("events", "WebhookEndpoint"), **WEBHOOK_ENDPOINT)
    auditlog.register(Group, m2m_fields={"permissions"})
    # Who was made staff, superuser or given a role; never the password hash.
    auditlog.register(
        get_user_model(),
        include_fields=["username", "is_active", "is_staff", "is_superuser"],
        m2m_fields={"groups", "user_permissions"},
    )
    # Second-factor devices enrolled and removed (reset_second_factor); never their keys, and not
    # the counters every sign-in moves.
    for label in ("otp_totp.TOTPDevice", "otp_static.StaticDevice"):
        auditlog.register(apps.get_model(label), include_fields=["user", "name", "confirmed"])
