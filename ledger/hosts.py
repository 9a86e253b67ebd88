"""Which hosts the server may call: node URLs, block.io's base URL, webhook URLs.

The deployment owns the lists (NODE_HOSTS, WEBHOOK_HOSTS, parsed in cryptoadmin/settings.py);
a person editing a wallet or a webhook only picks a URL on them, so nobody can make the server
call an arbitrary address (server-side request forgery, port scans of the private network).

An entry of a list is a host name (exact, any case), a name with a leading dot (that domain and
every subdomain, as Django's ALLOWED_HOSTS), an IP address or an IP network (10.0.0.0/8).
Errors never quote the URL: it may hold a password, and a password with '/' or '#' in it would
be cut into the host or the fragment by any URL parser.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cryptoadmin.errors import CryptoadminError

SCHEMES = ("http", "https")
# Characters that URL parsers disagree on (urllib vs urllib3) or that never belong in a host.
_AMBIGUOUS = set("\\ \t\r\n\x00")


class UrlRefused(CryptoadminError, ValueError):
    """A URL the server will not call; `code` says why (url_invalid, url_scheme,
    url_credentials, host_not_allowed)."""

    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code


def check_url(url, hosts, *, setting="NODE_HOSTS", schemes=SCHEMES) -> str:
    """The URL's host name if the URL may be called, else UrlRefused. `hosts` is the allow-list;
    `setting` names it in the message."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused("the URL is empty", code="url_invalid")
    if any(ch in _AMBIGUOUS or ord(ch) < 32 for ch in url):
        raise UrlRefused(
            "the URL holds spaces, backslashes or control characters", code="url_invalid"
        )
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise _unreadable(url) from None
    if parts.scheme.lower() not in schemes:
        raise UrlRefused(f"the URL must start with {' or '.join(schemes)}://", code="url_scheme")
    if "@" in url.split("://", 1)[-1][len(parts.netloc) :] or not host:
        raise _unreadable(url)
    if port == 0:
        raise UrlRefused("the URL's port is 0", code="url_invalid")
    if not host_allowed(host, hosts):
        raise UrlRefused(
            f"host {host!r} is not on {setting}: the deployment lists the hosts the server may "
            "call in its environment",
            code="host_not_allowed",
        )
    return host


def _unreadable(url) -> UrlRefused:
    if "@" in url:
        # The credentials hold '/', '?' or '#': the host cannot be told from the password.
        return UrlRefused(
            "the URL cannot be read: percent-encode '/', '?', '#' and '@' in its user and "
            "password (%2F, %3F, %23, %40)",
            code="url_credentials",
        )
    return UrlRefused("the URL cannot be read (host or port)", code="url_invalid")


def host_allowed(host: str, hosts) -> bool:
    host = host.lower().rstrip(".")
    address = _address(host)
    for entry in hosts or ():
        entry = entry.strip().lower()
        if not entry:
            continue
        if address is not None:
            network = _network(entry)
            if network is not None and address in network:
                return True
        elif entry.startswith("."):
            if host == entry[1:] or host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False


def _address(host):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _network(entry):
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
