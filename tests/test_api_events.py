"""GET /api/v1/events: the feed for tokens with events:read, in the API's error shape."""

import pytest
from django.test import Client

from balances.models import ApiToken
from events.models import Event
from ledger import outbox

# The feed serves only rows below every running transaction: the test's own must have ended.
pytestmark = pytest.mark.django_db(transaction=True)


def get(token, **params):
    return Client().get("/api/v1/events", params, HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def reader():
    return ApiToken.issue("feed", scopes=["events:read"])[1]


def test_it_pages_the_feed_for_a_token_with_events_read(reader):
    for n in range(3):
        outbox.emit("withdrawal.queued", "withdrawal", n, {"amount": "0.10000000"})
    first = get(reader, limit=2)
    assert first.status_code == 200, first.content
    body = first.json()
    assert [e["object"]["id"] for e in body["events"]] == ["0", "1"] and body["has_more"]
    event = body["events"][0]
    assert event["id"] == str(Event.objects.get(object_id="0").uid)
    assert (event["type"], event["sequence"], event["data"]) == (
        "withdrawal.queued",
        1,
        {"amount": "0.10000000"},
    )
    rest = get(reader, after=body["next"], limit=2).json()
    assert [e["object"]["id"] for e in rest["events"]] == ["2"] and not rest["has_more"]


def test_it_refuses_without_the_scope_or_with_a_bad_cursor(reader):
    balances_only = ApiToken.issue("balances")[1]
    refused = get(balances_only)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scope"
    assert Client().get("/api/v1/events").status_code == 401
    bad = get(reader, after="nonsense")
    assert bad.status_code == 400 and bad.json()["error"] == {
        "code": "bad_cursor",
        "message": "after must be a cursor this feed returned.",
        "field": "after",
    }
    assert get(reader, limit=0).json()["error"]["code"] == "bad_limit"
    assert get(reader, limit="ten").status_code == 400


def test_it_is_in_the_openapi_document():
    document = Client().get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/events"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"after", "limit"}
