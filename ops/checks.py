"""Configuration that parses but cannot work, for the variables the README's table lists.

Numbers that do not parse stop start-up in settings.py; these are the ones that parse but
make no sense (`Q_WORKERS=0`), reported all at once by `manage.py check` and at start-up.
"""

from django.conf import settings
from django.core.checks import Error, Tags, register


def _positive(name, value, errors, code, minimum=1, unit=""):
    if value < minimum:
        errors.append(
            Error(
                f"{name}={value} must be at least {minimum}{unit}.",
                hint=f"Set {name} in the environment (see the README's configuration table).",
                id=f"ops.{code}",
            )
        )


def _greater_than_zero(name, value, errors, code):
    if value <= 0:
        errors.append(Error(f"{name}={value:g} must be greater than 0.", id=f"ops.{code}"))


@register(Tags.compatibility)
def check_environment(app_configs, **kwargs):
    errors = []
    q = settings.Q_CLUSTER
    _positive("Q_WORKERS", q["workers"], errors, "E001")
    _positive("Q_TIMEOUT", q["timeout"], errors, "E002", unit=" second(s)")
    if q["retry"] <= q["timeout"]:
        errors.append(
            Error(
                f"Q_RETRY={q['retry']} must be greater than Q_TIMEOUT={q['timeout']}: a task still "
                "running would be handed to a second worker.",
                id="ops.E003",
            )
        )
    # LOGIN_MAX_FAILURES and LOGIN_FAILURE_WINDOW become django-axes' settings.
    _positive("LOGIN_MAX_FAILURES", settings.AXES_FAILURE_LIMIT, errors, "E004")
    _positive(
        "LOGIN_FAILURE_WINDOW",
        int(settings.AXES_COOLOFF_TIME.total_seconds()),
        errors,
        "E005",
        unit=" second(s)",
    )
    _positive(
        "HEALTH_NODE_TIMEOUT", settings.HEALTH_NODE_TIMEOUT, errors, "E006", unit=" second(s)"
    )
    _positive(
        "DB_CONN_MAX_AGE",
        settings.DATABASES["default"].get("CONN_MAX_AGE") or 0,
        errors,
        "E007",
        minimum=0,
    )
    _positive("SECURE_HSTS_SECONDS", settings.SECURE_HSTS_SECONDS, errors, "E008", minimum=0)
    _positive("WEB_WORKERS", settings.WEB_WORKERS, errors, "E009")
    if not 1 <= settings.PORT <= 65535:
        errors.append(Error(f"PORT={settings.PORT} is not a TCP port (1-65535).", id="ops.E010"))
    _positive("ALERT_REMINDER_MINUTES", settings.ALERT_REMINDER_MINUTES, errors, "E011")
    _positive(
        "ALERT_NODE_DOWN_MINUTES", settings.ALERT_NODE_DOWN_MINUTES, errors, "E012", minimum=0
    )
    # Parsed in settings.py (a number that does not parse stops start-up there).
    _greater_than_zero("BALANCE_CACHE_MAX_USERS", settings.BALANCE_CACHE_MAX_USERS, errors, "E013")
    _greater_than_zero(
        "BALANCE_CACHE_WAIT_TIMEOUT", settings.BALANCE_CACHE_WAIT_TIMEOUT, errors, "E014"
    )
    _greater_than_zero(
        "BALANCE_CACHE_MAX_STALENESS", settings.BALANCE_CACHE_MAX_STALENESS, errors, "E015"
    )
    mode = settings.BALANCE_CACHE_CROSS_PROCESS
    if mode not in ("", "notify", "ttl", "off"):
        errors.append(
            Error(
                f"BALANCE_CACHE_CROSS_PROCESS={mode!r} is not one of notify, ttl, off.",
                id="ops.E016",
            )
        )
    if settings.METRICS_TOKEN and len(settings.METRICS_TOKEN) < 20:
        errors.append(
            Error(
                "METRICS_TOKEN is shorter than 20 characters.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="ops.E017",
            )
        )
    if settings.ALERT_URLS:
        from .notify import bad_urls

        for position, scheme in bad_urls(settings.ALERT_URLS):
            # The URL itself carries tokens and passwords: name its place and scheme only.
            errors.append(
                Error(
                    f"ALERT_URLS: URL #{position} ({scheme}://...) is not a notification URL "
                    "apprise knows.",
                    hint="See https://github.com/caronc/apprise/wiki for the URL of each service.",
                    id="ops.E018",
                )
            )
    return errors


@register(Tags.security)
def check_security_settings(app_configs, **kwargs):
    """The sign-in's username-wide limit and the hosts the server may call (docs/security.md)."""
    from django.core.checks import Warning

    found = []
    if settings.LOGIN_USERNAME_MAX_FAILURES < settings.AXES_FAILURE_LIMIT:
        found.append(
            Error(
                f"LOGIN_USERNAME_MAX_FAILURES={settings.LOGIN_USERNAME_MAX_FAILURES} is below "
                f"LOGIN_MAX_FAILURES={settings.AXES_FAILURE_LIMIT}: guesses from other addresses "
                "would lock a person out.",
                id="ops.E019",
            )
        )
    if not settings.NODE_HOSTS:
        found.append(
            Warning(
                "NODE_HOSTS is empty: the server calls no node (every wallet's probe and poll "
                "says HostRefused).",
                hint="List the hosts of your nodes (and block.io) in NODE_HOSTS, comma-separated.",
                id="ops.W020",
            )
        )
    return found
