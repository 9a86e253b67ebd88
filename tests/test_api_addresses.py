"""POST /api/v1/addresses in process: a fresh address from the shared regtest node, recorded
and reported as address.created; a node that is down answers 503 and records nothing."""

import pytest

from ledger.models import Account, Address
from ledger.signals import events_emitted
from tests.api_helpers import call, error, token

pytestmark = pytest.mark.django_db


def ask(raw, body):
    return call("POST", "/api/v1/addresses", raw, body)


def test_it_gives_a_fresh_node_address_recorded_for_the_user(wallet, node):
    seen = []
    events_emitted.connect(receiver := lambda rows, **kw: seen.extend(rows))
    try:
        response = ask(token("addresses:write"), {"user": "alice", "currency": "BTC", "label": "x"})
    finally:
        events_emitted.disconnect(receiver)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"address", "currency", "user", "wallet", "created_at"}
    assert (body["currency"], body["user"], body["wallet"]) == ("BTC", "alice", wallet.name)
    row = Address.objects.get(address=body["address"])
    assert row.account.user_id == "alice" and row.account.code == 201 and row.label == "x"
    assert node.rpc("validateaddress", body["address"])["ismine"] is True
    (event,) = seen
    assert (event.type, event.object_id) == ("address.created", body["address"])
    again = ask(token("addresses:write"), {"user": "alice", "currency": "BTC"})
    assert again.json()["address"] != body["address"]


def test_it_answers_503_and_records_nothing_while_the_node_is_down(db_wallet):
    response = ask(token("addresses:write"), {"user": "alice", "currency": "BTC"})
    assert response.status_code == 503 and error(response)["code"] == "node_unreachable"
    assert not Address.objects.exists() and not Account.objects.filter(user_id="alice").exists()


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"user": "alice", "currency": "DOGE"}, 400, "unknown_currency"),
        ({"user": "", "currency": "BTC"}, 400, "invalid"),
        ({"user": "a" * 129, "currency": "BTC"}, 400, "invalid"),
        ({"currency": "BTC"}, 400, "invalid"),
    ],
)
def test_it_refuses_bad_input_without_recording(db_wallet, body, status, code):
    response = ask(token("addresses:write"), body)
    assert response.status_code == status and error(response)["code"] == code
    assert not Address.objects.exists()


def test_it_needs_the_addresses_write_scope(db_wallet):
    response = ask(token("transfers:write"), {"user": "alice", "currency": "BTC"})
    assert response.status_code == 403 and error(response)["code"] == "missing_scope"


def test_it_writes_the_history_entry_under_the_tokens_name(wallet):
    from django.contrib.admin.models import LogEntry

    response = ask(token("addresses:write", name="wallet app"), {"user": "bob", "currency": "BTC"})
    row = Address.objects.get(address=response.json()["address"])
    entry = LogEntry.objects.get(object_id=str(row.pk), content_type__model="address")
    assert entry.user.get_full_name() == "API token wallet app" and "bob" in entry.change_message
