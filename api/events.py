"""GET /api/v1/events?after=<cursor>&limit=: the events feed (events/feed.py) for tokens with
`events:read`. Reads only."""

from ninja import Router, Schema

from events import feed

from .auth import scoped
from .errors import ApiError

router = Router(tags=["events"])


class EventObject(Schema):
    type: str
    id: str


class EventOut(Schema):
    id: str
    type: str
    timestamp: str
    object: EventObject
    sequence: int
    data: dict


class EventsPage(Schema):
    events: list[EventOut]
    next: str
    has_more: bool


@router.get("", response=EventsPage, auth=scoped("events:read"), summary="Events after a cursor")
def list_events(request, after: str = "", limit: int = feed.DEFAULT_LIMIT):
    """Events in a stable order. Pass `next` as `after` to read on; an event whose transaction
    commits late is served after the events already read, never skipped. `limit`: 1 to 1000."""
    try:
        return feed.page(after, limit).as_dict()
    except feed.FeedError as refused:
        raise ApiError(400, refused.code, str(refused), refused.field) from None
