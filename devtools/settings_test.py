"""Test settings: PostgreSQL as default (the suite starts its own cluster and points
HOST/PORT at it), plus an SQLite alias so money-exactness runs on both engines."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-000000000000000")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cryptoadmin")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

from cryptoadmin.settings import *  # noqa: E402,F401,F403
from cryptoadmin.settings import DATABASES, LOOPBACK_HOSTS, NODE_HOSTS, WEBHOOK_HOSTS  # noqa: E402

DATABASES["sqlite"] = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": "cryptoadmin-sqlite",
    "TEST": {"NAME": os.environ.get("SQLITE_TEST_FILE", "")},
}
SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TEST_HOOKS = (
    True  # cryptoadmin.faults: tests crash or park a process at named money-path boundaries
)
# The suite's regtest nodes, block.io double and webhook receivers listen on loopback.
NODE_HOSTS = NODE_HOSTS + LOOPBACK_HOSTS
WEBHOOK_HOSTS = WEBHOOK_HOSTS + LOOPBACK_HOSTS
if os.environ.get("FRESH_CONTENT_TYPES"):
    # A long-lived test server (devtools/fresh_content_types.py).
    MIDDLEWARE = ["devtools.fresh_content_types.FreshContentTypesMiddleware", *MIDDLEWARE]  # noqa: F405
