"""One webhook attempt: the body, Standard Webhooks signatures (the maintained
`standardwebhooks` package, so receivers verify with the same code), the POST with a timeout
and no redirects, and what to do next (the retry schedule with jitter and Retry-After)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from ledger.hosts import UrlRefused, check_url

# Seconds after each failed attempt (about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h), then daily
# until GIVE_UP after the event: the receiver had three days to come back.
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000)
DAILY = 86400
GIVE_UP = timedelta(days=3)
JITTER = 0.1  # +-10%: endpoints that failed together do not all retry in the same second
EXCERPT = 500  # characters of the response kept with the attempt (shown escaped)


@dataclass(frozen=True)
class Result:
    outcome: str  # ok, http_error, gone, redirect, timeout, refused, host_not_allowed, error
    status: int | None
    duration_ms: int
    excerpt: str = ""
    retry_after: float | None = None  # seconds the receiver asked for

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def body(event) -> str:
    return json.dumps(event.payload(), separators=(",", ":"), sort_keys=True)


def signing_secrets(endpoint, now: datetime) -> list[str]:
    """The current secret, and during a rotation the previous one until it expires."""
    out = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires and expires > now:
        out.append(endpoint.previous_secret)
    return out


def headers(endpoint, event, text: str, now: datetime) -> dict:
    msg_id = str(event.uid)  # the same on every retry: receivers drop duplicates by it
    signatures = " ".join(
        Webhook(secret).sign(msg_id, now, text) for secret in signing_secrets(endpoint, now)
    )
    return {
        "Content-Type": "application/json",
        "User-Agent": "cryptoadmin-webhooks",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


def send(session: requests.Session, endpoint, event) -> Result:
    start = time.monotonic()

    def took():
        return int((time.monotonic() - start) * 1000)

    try:
        # Checked again before every request: the deployment may have shortened the list.
        check_url(endpoint.url, settings.WEBHOOK_HOSTS, setting="WEBHOOK_HOSTS")
    except UrlRefused as refused:
        return Result("host_not_allowed", None, 0, refused.code)
    text = body(event)
    now = datetime.now(UTC)
    try:
        reply = session.post(
            endpoint.url,
            data=text.encode(),
            headers=headers(endpoint, event, text, now),
            timeout=settings.WEBHOOK_TIMEOUT,
            allow_redirects=False,
            stream=True,
        )
        try:
            excerpt = reply.raw.read(EXCERPT * 4, decode_content=True).decode("utf-8", "replace")
        finally:
            reply.close()
    except requests.Timeout:
        return Result("timeout", None, took())
    except requests.ConnectionError as exc:
        timeout = "timed out" in str(exc).lower()
        return Result("timeout" if timeout else "refused", None, took(), str(exc)[:EXCERPT])
    except requests.RequestException as exc:
        return Result("error", None, took(), str(exc)[:EXCERPT])
    return _judge(reply, excerpt[:EXCERPT], took())


def _judge(reply, excerpt: str, duration_ms: int) -> Result:
    code = reply.status_code
    if 200 <= code < 300:
        outcome = "ok"
    elif code == 410:
        outcome = "gone"
    elif 300 <= code < 400:
        outcome = "redirect"  # never followed: the allow-list names the receiver itself
    else:
        outcome = "http_error"
    retry_after = _retry_after(reply.headers.get("Retry-After"))
    return Result(outcome, code, duration_ms, excerpt, retry_after)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to isdigit(), not to int()
        return int(value)  # seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def next_attempt(attempts: int, first_at: datetime, now: datetime, retry_after=None, rng=random):
    """When to try again after `attempts` failed attempts, or None: give up."""
    base = SCHEDULE[attempts - 1] if attempts <= len(SCHEDULE) else DAILY
    delay = base * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, DAILY))
    when = now + timedelta(seconds=delay)
    return None if when > first_at + GIVE_UP else when
