"""Credentials out of URLs before they are shown or recorded (node URLs in messages, the
admin and the audit log). A bottom module: it imports nothing of the project."""

import re

# Credentials end at the LAST '@' (a password may contain '@' and '/'); the scheme is
# matched in any case (HTTP:// too) and is optional. Masking a path that holds an '@' as
# well hides more than needed, never less.
_URL_CREDENTIALS = re.compile(
    r"\A(?P<scheme>\s*[A-Za-z][A-Za-z0-9+.-]*://)?(?P<cred>.*)@", re.DOTALL
)


def mask_url(url: str) -> str:
    """http://user:pass@host:port -> http://•••@host:port"""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme') or ''}•••@", url, count=1)


# Secrets by key and by shape.
MASK = "••••••"
SECRET_WORDS = (
    "pass",  # password, passwd, passphrase
    "pwd",
    "secret",
    "token",
    "key",  # api_key, apikey, private_key, xprv keys
    "pin",
    "auth",  # rpcauth, authorization
    "credential",
    "cookie",
    "seed",
    "mnemonic",
    "private",
    "xprv",
    "wif",
)
_HOST = re.compile(r"[A-Za-z0-9.-]+\.[A-Za-z0-9.-]+(:[0-9]+)?")  # a host (and port): readable


def secret_key(key) -> bool:
    key = str(key).lower()
    return any(word in key for word in SECRET_WORDS)


def secret_shaped(text: str) -> bool:
    """A `user:secret` pair, or 16+ characters without spaces mixing letters and digits (an
    API key, a hash, an extended key), which is not a host name."""
    text = text.strip()
    if "://" in text or any(ch.isspace() for ch in text):
        return False
    if re.fullmatch(r"[^:@/]+:[^:@/]+", text) and not text.rsplit(":", 1)[1].isdigit():
        return True  # user:secret, not host:port
    if len(text) < 16 or _HOST.fullmatch(text):
        return False
    return any(ch.isdigit() for ch in text) and any(ch.isalpha() for ch in text)


def mask_value(value, secret: bool = False):
    """`value` with every secret in it masked; `secret`: its key names a secret."""
    if isinstance(value, dict):
        return {k: mask_value(v, secret or secret_key(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(item, secret) for item in value]
    if secret:
        return MASK if value not in (None, "", False) else value
    if isinstance(value, str):
        if "@" in value or "://" in value:
            return mask_url(value)  # a URL's credentials
        if secret_shaped(value):
            return MASK
    return value
