"""The events feed: pages of events after a cursor, never skipping one that commits late.

Ids (and PostgreSQL transaction ids) are taken before commit, so a transaction holding a
lower number can commit after a reader already saw a higher one. On PostgreSQL each row keeps
its writer's transaction id, and a page holds only rows whose transaction id is below the
oldest transaction still running (pg_snapshot_xmin of the reading statement's snapshot):
every writer below it has ended, so nothing can appear behind the cursor afterwards. Rows are
ordered by (xid, id) and the cursor carries both. SQLite runs one writer at a time and assigns
ids inside it, so id order is commit order there (xid is 0). A long transaction anywhere holds
the feed back until it ends; it never makes the feed skip. Reads only: a GET never writes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connections
from django.db.models import Q
from django.db.models.expressions import RawSQL

from cryptoadmin.errors import CryptoadminError

from .models import Event

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CURSOR = re.compile(r"^(\d{1,19})-(\d{1,19})$")


class FeedError(CryptoadminError, ValueError):
    def __init__(self, code: str, message: str, field: str):
        super().__init__(message)
        self.code, self.field = code, field


@dataclass(frozen=True)
class Page:
    events: list
    next: str  # the cursor to pass as `after` for the following page
    has_more: bool

    def as_dict(self) -> dict:
        return {
            "events": [e.payload() for e in self.events],
            "next": self.next,
            "has_more": self.has_more,
        }


def parse_cursor(after) -> tuple[int, int]:
    if after in (None, ""):
        return (-1, 0)
    match = CURSOR.match(str(after))
    if not match:
        raise FeedError("bad_cursor", "after must be a cursor this feed returned.", "after")
    return int(match[1]), int(match[2])


def parse_limit(limit) -> int:
    if limit in (None, ""):
        return DEFAULT_LIMIT
    try:
        value = int(limit)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        message = f"limit must be a whole number from 1 to {MAX_LIMIT}."
        raise FeedError("bad_limit", message, "limit")
    return value


def page(after=None, limit=None, *, using="default") -> Page:
    xid, last_id = parse_cursor(after)
    limit = parse_limit(limit)
    rows = Event.objects.using(using).filter(Q(xid__gt=xid) | Q(xid=xid, id__gt=last_id))
    if connections[using].vendor == "postgresql":
        # Only rows every transaction below which has ended (see the module's docstring).
        horizon = RawSQL("pg_snapshot_xmin(pg_current_snapshot())::text::bigint", [])
        rows = rows.filter(xid__lt=horizon)
    events = list(rows.order_by("xid", "id")[: limit + 1])
    more = len(events) > limit
    events = events[:limit]
    cursor = f"{events[-1].xid}-{events[-1].id}" if events else _echo(xid, last_id)
    return Page(events, cursor, more)


def _echo(xid: int, last_id: int) -> str:
    return "" if xid < 0 else f"{xid}-{last_id}"
