"""Which URLs a webhook may name: http(s) to a host on the deployment's allow-list
(WEBHOOK_HOSTS), loopback only when WEBHOOK_ALLOW_LOOPBACK (on with DEBUG), nothing else."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listed(host: str, allowed) -> bool:
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False


def url_problem(url: str) -> str | None:
    """None when the URL may be called, else a code: bad_url, scheme, host_not_allowed."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018  raises ValueError on a port out of range
    except ValueError:
        return "bad_url"
    if parts.scheme not in ("http", "https"):
        return "scheme"
    if not host:
        return "bad_url"
    if _is_loopback(host):
        return None if settings.WEBHOOK_ALLOW_LOOPBACK else "host_not_allowed"
    return None if _listed(host, settings.WEBHOOK_HOSTS) else "host_not_allowed"
