"""Sending notifications through apprise: one URL per channel (mailtos://, slack://, tgram://,
json://...), configured in ALERT_URLS. Nothing here touches the database."""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)


def split_urls(raw: str) -> list[str]:
    return [u for u in re.split(r"[\s,]+", raw or "") if u]


def bad_urls(raw: str) -> list[tuple[int, str]]:
    """(position, scheme) of each URL apprise cannot use."""
    import apprise

    out = []
    for position, url in enumerate(split_urls(raw), start=1):
        if apprise.Apprise.instantiate(url) is None:
            out.append((position, url.split("://", 1)[0] if "://" in url else "?"))
    return out


def send(title: str, body: str, urls: str) -> bool:
    """True when every configured channel accepted the message."""
    import apprise

    targets = apprise.Apprise()
    for url in split_urls(urls):
        targets.add(url)
    if not len(targets):
        return False
    return bool(targets.notify(title=title, body=body))
