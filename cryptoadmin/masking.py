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
