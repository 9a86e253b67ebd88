"""Settings come from the environment; see README for the list.

Values that cannot be parsed stop start-up here with a message naming the variable.
Values that parse but make no sense together are reported by system checks
(ops/deploy_checks.py), so `manage.py check` explains them all at once.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off."
    )


def env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_float(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or ("insecure-dev-key-only-for-DEBUG" if DEBUG else "")
if not SECRET_KEY:
    # Django reads SECRET_KEY before system checks run, so this one cannot wait for them.
    raise ImproperlyConfigured(
        "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY to 50+ random characters (python "
        "-c 'import secrets; print(secrets.token_urlsafe(50))'), or DEBUG=1 for development."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# A refused form names the settings that decide it (CSRF_TRUSTED_ORIGINS, BEHIND_TLS_PROXY).
CSRF_FAILURE_VIEW = "cryptoadmin.csrf.failure"

_db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
try:
    _db = dj_database_url.parse(_db_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
except Exception as exc:  # dj_database_url raises several types for bad URLs
    raise ImproperlyConfigured(
        f"DATABASE_URL could not be parsed ({exc}); expected postgres://user:pass@host:port/name "
        "or sqlite:///path/to/file.sqlite3"
    ) from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE lets the web process and the scheduler share the file without
    # "database is locked" on the first write of a transaction.
    _db.setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    # Sign-in and audit (issue 13, points 3 and 8): see the block "Sign-in, lock-out, audit" below.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "auditlog",
    "cryptoadmin.apps.CryptoadminConfig",
    "ledger",
    "broadcasts",
    "balances",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): signed in with a second factor
    "django_otp.middleware.OTPMiddleware",
    "cryptoadmin.signin.middleware.SecondFactorRequiredMiddleware",
    # the actor and address of every recorded change (django-auditlog)
    "cryptoadmin.audit.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lock-out into its page
]

ROOT_URLCONF = "cryptoadmin.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cryptoadmin.context_processors.admin_alerts",
            ],
        },
    },
]
WSGI_APPLICATION = "cryptoadmin.wsgi.application"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Times on every page carry their timezone (cryptoadmin/formats/en/formats.py).
FORMAT_MODULE_PATH = ["cryptoadmin.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT") or str(BASE_DIR / "var" / "static")

# Production hardening follows DEBUG; `check --deploy` is clean with DEBUG off.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
SESSION_COOKIE_HTTPONLY = True

# django-q2 with the ORM broker: no extra service to run.
Q_CLUSTER = {
    "name": "cryptoadmin",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 300),
    "retry": env_int("Q_RETRY", 600),
    # A broadcast is never retried by the queue: the broadcaster owns its one attempt.
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 1000,
    "poll": 1,
}

# --- Sign-in, lock-out, audit (issue 13, points 3 and 8) -------------------------------------
# Staff sign in with a password and a TOTP code (django-otp). Required for every staff user
# unless OTP_REQUIRED is off; `make run` (DEBUG=1) leaves it off and says so.
OTP_REQUIRED = env_bool("OTP_REQUIRED", not DEBUG)
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "cryptoadmin")
OTP_RECOVERY_CODES = 10
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # no TOTP key or QR code in the admin's device pages

# Client address: REMOTE_ADDR, unless a trusted proxy is configured: then the entry that
# proxy appended to X-Forwarded-For (counted from the right). Behind a TLS proxy
# (BEHIND_TLS_PROXY) one proxy is assumed unless TRUSTED_PROXY_COUNT says otherwise.
TRUSTED_PROXY_COUNT = env_int(
    "TRUSTED_PROXY_COUNT", 1 if env_bool("BEHIND_TLS_PROXY", False) else 0
)

# django-axes: failures counted per (username, address) and per address; either reaching
# LOGIN_MAX_FAILURES locks. Guesses from other addresses never lock a person out: a username is
# locked as a whole only at LOGIN_USERNAME_MAX_FAILURES failures in the window, and not from an
# address that user signed in from within LOGIN_KNOWN_PLACE_DAYS (cryptoadmin/signin/lockout.py).
# Attempts made while locked are not counted, so one address can spend at most
# LOGIN_MAX_FAILURES failures in all: it cannot lock out every user, only itself.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "cryptoadmin.signin.lockout.SignInHandler"
AXES_FAILURE_LIMIT = env_int("LOGIN_MAX_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("LOGIN_FAILURE_WINDOW", 900))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
LOGIN_USERNAME_MAX_FAILURES = env_int("LOGIN_USERNAME_MAX_FAILURES", 50)
LOGIN_KNOWN_PLACE_AGE = timedelta(days=env_int("LOGIN_KNOWN_PLACE_DAYS", 90))
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "cryptoadmin.signin.clientip.client_ip"
AXES_LOCKOUT_CALLABLE = "cryptoadmin.signin.views.locked_out"
AXES_VERBOSE = False
# Failed attempts keep their POST data: never the password (always masked) nor the code field,
# which may hold a still-valid recovery code typed with a mistyped password.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token"]

# django-auditlog: who changed money settings, tokens and group permissions (cryptoadmin/audit.py).
AUDITLOG_INCLUDE_ALL_MODELS = False

# --- GraphQL abuse limits (issue 13, point 4) -----------------------------------------------
# Checked while parsing/validating, before any resolver or SQL query. The balances query is 3
# deep (2 as the depth limiter counts), has no alias and about 20 tokens.
GRAPHQL_MAX_DEPTH = env_int("GRAPHQL_MAX_DEPTH", 4)
GRAPHQL_MAX_ALIASES = env_int("GRAPHQL_MAX_ALIASES", 10)
GRAPHQL_MAX_TOKENS = env_int("GRAPHQL_MAX_TOKENS", 1000)
GRAPHQL_INTROSPECTION = env_bool("GRAPHQL_INTROSPECTION", DEBUG)

# --- Content-Security-Policy (django-csp; docs/security.md) ---------------------------------
# Every page: scripts, styles, fonts, images, requests and forms from this site only; no inline
# script, no plugin, no framing. Inline style attributes stay allowed (the admin's own pages and
# this project's cells use them; they run no code). data: images: the second factor's QR code.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- Hosts the server may call (ledger/hosts.py; docs/security.md) ---------------------------
# Node URLs and block.io's base_url must name a host on NODE_HOSTS, webhook URLs one on
# WEBHOOK_HOSTS: checked when a wallet or an endpoint is saved and before every request, so a
# person editing one cannot make the server call an arbitrary address. Entries: host names,
# ".example.com" (the domain and its subdomains), IP addresses, IP networks (10.0.0.0/8).
# Loopback is added in DEBUG only (a node on this machine in development).
LOOPBACK_HOSTS = ["localhost", "127.0.0.0/8", "::1"]
NODE_HOSTS = env_list("NODE_HOSTS") + (LOOPBACK_HOSTS if DEBUG else [])
WEBHOOK_HOSTS = env_list("WEBHOOK_HOSTS") + (LOOPBACK_HOSTS if DEBUG else [])

# Backend defaults: every RPC has a deadline.
NODE_RPC_TIMEOUT = env_int("NODE_RPC_TIMEOUT", 30)
# The listener's unix socket, where deploy/walletnotify (ledger/walletnotify_push.py, which reads
# the same variable with the same default) hands over the txids bitcoind announces.
WALLETNOTIFY_SOCKET = os.environ.get("WALLETNOTIFY_SOCKET") or str(
    BASE_DIR / "var" / "walletnotify.sock"
)
HEALTH_NODE_TIMEOUT = env_int("HEALTH_NODE_TIMEOUT", 5)
# A broadcast's send is leased for 2 x NODE_RPC_TIMEOUT (the node calls' budget: the
# state-changing call's own timeouts are cut to fit what is left of it) + this margin. While
# the lease runs the send is in flight: nobody closes it by hand, on any database.
BROADCAST_LEASE_MARGIN = env_int("BROADCAST_LEASE_MARGIN", 30)
# block.io rejects a withdraw repeating a nonce used less than an hour before; after that it
# would pay again. A lost withdraw is re-issued with its nonce only this long after it opened.
BLOCKIO_NONCE_WINDOW = env_int("BLOCKIO_NONCE_WINDOW", 3000)
# /health gives details (nodes, scheduler, ...) to a staff session or `Authorization: Bearer
# <HEALTH_TOKEN>`; anyone else gets the status only. Empty: no token opens the details.
HEALTH_TOKEN = os.environ.get("HEALTH_TOKEN", "")
# Node probes are shared by every /health hit for this many seconds (block.io counts API calls).
HEALTH_NODE_CACHE_SECONDS = env_int("HEALTH_NODE_CACHE_SECONDS", 5)

# --- Per-process balance cache (balances/cache.py; README "Balances") -------------------------
BALANCE_CACHE_MAX_USERS = env_int("BALANCE_CACHE_MAX_USERS", 10_000)
# Seconds a caller waits for another caller's load of the same user.
BALANCE_CACHE_WAIT_TIMEOUT = env_float("BALANCE_CACHE_WAIT_TIMEOUT", 10.0)
# Worst-case cross-process staleness, seconds.
BALANCE_CACHE_MAX_STALENESS = env_float("BALANCE_CACHE_MAX_STALENESS", 2.0)
# Replies to the balances query kept per process with the snapshot they were computed from
# (balances/answers.py); 0 turns it off.
BALANCES_ANSWER_CACHE_SIZE = env_int("BALANCES_ANSWER_CACHE_SIZE", 10_000)
# "notify" (PostgreSQL LISTEN/NOTIFY), "ttl" (entries expire after MAX_STALENESS), "off" (single
# process only); anything else: notify on PostgreSQL, ttl otherwise.
BALANCE_CACHE_CROSS_PROCESS = os.environ.get("BALANCE_CACHE_CROSS_PROCESS", "").strip().lower()

LOG_LEVEL = (os.environ.get("LOG_LEVEL") or "INFO").strip().upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    # logging.config would otherwise stop start-up with a traceback that names no variable.
    raise ImproperlyConfigured(
        f"LOG_LEVEL={os.environ.get('LOG_LEVEL')!r} is not a log level: use DEBUG, INFO, WARNING, "
        "ERROR or CRITICAL."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Both log request URLs at DEBUG, and block.io's API key is a query parameter.
    "loggers": {
        "BitcoinRPC": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # django-axes logs every failure at WARNING and its own steps at INFO.
        "axes": {"level": "WARNING"},
        # Django's own console handler (DEBUG only) would print each 4xx/5xx a second time
        # beside the root handler: its records go to the root handler alone.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}

# --- Production: web server, static files, metrics, alerts (issue 18) ----------------------
# Kept together so other settings changes merge around it. The ops app holds the metrics
# endpoint, the alerts and the process handling of `serve` and `demo`.
INSTALLED_APPS += ["ops"]
# whitenoise serves collected static files from every web worker, right after SecurityMiddleware
# so redirects and security headers still apply first; no separate web server is needed for CSS.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies are made by collectstatic; without a manifest, a page never fails
    # because collectstatic has not run yet (the test suite renders pages without it).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
PORT = env_int("PORT", 8000)
WEB_WORKERS = env_int("WEB_WORKERS", 2)
# /metrics answers a staff session, or `Authorization: Bearer <METRICS_TOKEN>` when it is set.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Alerts go to every apprise URL here (comma or space separated): mailtos://, slack://, tgram://, json://...
ALERT_URLS = os.environ.get("ALERT_URLS", "")
ALERT_REMINDER_MINUTES = env_int("ALERT_REMINDER_MINUTES", 60)
ALERT_NODE_DOWN_MINUTES = env_int("ALERT_NODE_DOWN_MINUTES", 5)

# --- Events, the feed and webhooks (docs/events.md) ------------------------------------------
# Webhook URLs must name a host on WEBHOOK_HOSTS (above).
INSTALLED_APPS += ["events"]
# Seconds one attempt may take (connect and read), and concurrent requests per endpoint.
WEBHOOK_TIMEOUT = env_float("WEBHOOK_TIMEOUT", 10.0)
WEBHOOK_ENDPOINT_CONCURRENCY = env_int("WEBHOOK_ENDPOINT_CONCURRENCY", 4)
# Endpoints a dispatcher serves at once (one thread each): a slow one holds only its own.
WEBHOOK_WORKERS = env_int("WEBHOOK_WORKERS", 8)
# An endpoint failing this long raises an alert.
WEBHOOK_ALERT_AFTER_HOURS = env_int("WEBHOOK_ALERT_AFTER_HOURS", 24)

# --- The product's API (/api/v1/) ------------------------------------------------------------
# ninja serves its docs page's scripts from its own static files (nothing from outside).
INSTALLED_APPS += ["ninja", "api"]
# Outermost after security and static files: a refusal from any later layer keeps the API's shape.
MIDDLEWARE.insert(
    MIDDLEWARE.index("whitenoise.middleware.WhiteNoiseMiddleware") + 1,
    "api.middleware.ApiErrorShapeMiddleware",
)
# Money requests' Idempotency-Key answers are kept this long (at least 24 hours), and a request
# waits this long for another with its key to finish before answering 409 (PostgreSQL).
IDEMPOTENCY_KEY_HOURS = max(24, env_int("IDEMPOTENCY_KEY_HOURS", 48))
IDEMPOTENCY_WAIT_MS = env_int("IDEMPOTENCY_WAIT_MS", 5000)
# Requests per token per period ("6000/min", "50/s"; empty: no limit), counted per web process.
API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "6000/min").strip()
