"""Configuration that parses but cannot work: reported by `manage.py check` and at start-up."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=False)
def check_configuration(app_configs, **kwargs):
    errors = []
    if not settings.DEBUG and settings.SECRET_KEY.startswith("insecure-"):
        errors.append(
            Error(
                "SECRET_KEY is the development key while DEBUG is off.",
                hint="Set SECRET_KEY to 50+ random characters.",
                id="cryptoadmin.E001",
            )
        )
    if not settings.DEBUG and not settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS is empty and DEBUG is off: every request would be refused.",
                hint="Set ALLOWED_HOSTS to a comma-separated list, e.g. "
                "ALLOWED_HOSTS=admin.example.com",
                id="cryptoadmin.E002",
            )
        )
    if settings.NODE_RPC_TIMEOUT <= 0:
        errors.append(
            Error("NODE_RPC_TIMEOUT must be a positive number of seconds.", id="cryptoadmin.E003")
        )
    if settings.BROADCAST_LEASE_MARGIN < 1:
        errors.append(
            Error(
                "BROADCAST_LEASE_MARGIN must be at least 1 second: the node call must end before "
                "the send's lease does.",
                id="cryptoadmin.E004",
            )
        )
    if not 0 < settings.BLOCKIO_NONCE_WINDOW < 3600:
        errors.append(
            Error(
                "BLOCKIO_NONCE_WINDOW must be between 1 and 3599 seconds: block.io accepts a "
                "repeated nonce after an hour.",
                id="cryptoadmin.E005",
            )
        )
    if settings.HEALTH_TOKEN and len(settings.HEALTH_TOKEN) < 32:
        errors.append(
            Error(
                "HEALTH_TOKEN is shorter than 32 characters: it opens /health's details to whoever "
                "guesses it.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="cryptoadmin.E020",
            )
        )
    if settings.HEALTH_NODE_CACHE_SECONDS < 0:
        errors.append(Error("HEALTH_NODE_CACHE_SECONDS must be 0 or more.", id="cryptoadmin.E021"))
    return errors


@register(Tags.security, deploy=True)
def check_sign_in(app_configs, **kwargs):
    """Issue 13, point 3: production staff sign in with a second factor."""
    from django.core.checks import Warning

    warnings = []
    if not settings.DEBUG and not settings.OTP_REQUIRED:
        warnings.append(
            Warning(
                "OTP_REQUIRED is off with DEBUG off: staff sign in with a password alone.",
                hint="Unset OTP_REQUIRED (it follows DEBUG) or set OTP_REQUIRED=1.",
                id="cryptoadmin.W010",
            )
        )
    return warnings
