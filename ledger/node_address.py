"""A bitcoind node's RPC address from its parts (host, port, user, password) and back, and its
cookie file: the wallet form writes URLs with these, the backend reads cookies with them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from cryptoadmin.errors import CryptoadminError

# RFC 3986's sub-delimiters: allowed as they are in a URL's user and password.
SUB_DELIMS = "!$&'()*+,;="


class CookieUnreadable(CryptoadminError, ValueError):
    code = "cookie_unreadable"


def compose(host: str, port, user: str = "", password: str = "", scheme="http") -> str:
    # Percent-encoded only where a URL needs it (a password holding '/', '?', '#' or '@' cannot
    # be told from the host); the backend decodes them before it sends them to the node.
    credentials = f"{quote(user, safe=SUB_DELIMS)}:{quote(password, safe=SUB_DELIMS + ':')}@"
    credentials = credentials if user else ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{credentials}{host}" + (f":{int(port)}" if port else "")


def parts(url: str) -> dict:
    # Credentials end at the LAST '@': a saved password may hold '/', '?' or '#' as typed.
    scheme, _, rest = url.partition("://")
    credentials, _, location = rest.rpartition("@")
    split = urlsplit(f"{scheme or 'http'}://{location}")
    user, _, password = credentials.partition(":")
    try:
        port = split.port
    except ValueError:
        port = None  # not a number: the form shows it empty and asks again
    return {
        "host": split.hostname or "",
        "port": port,
        "rpc_user": unquote(user),
        "password": unquote(password),
    }


def read_cookie(path: str) -> tuple[str, str]:
    """(user, password) of the node's .cookie file ("__cookie__:<hex>")."""
    if not Path(path).is_absolute():
        raise CookieUnreadable("The cookie file's path must be absolute.")
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise CookieUnreadable(
            f"The service cannot read the cookie file ({exc.strerror})."
        ) from None
    user, colon, password = text.partition(":")
    if not (colon and user and password) or "\n" in text:
        raise CookieUnreadable("The cookie file does not hold one user:password line.")
    return user, password


def with_cookie(url: str, path: str) -> str:
    """The URL with the cookie's credentials (read now: the node writes one at each start)."""
    user, password = read_cookie(path)
    split = urlsplit(url)
    return compose(split.hostname, split.port, user, password, scheme=split.scheme)
