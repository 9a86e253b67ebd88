"""POST /api/v1/transfers in process: moves between users' accounts, all or none, refusals
with the move and the reason, the balances query's account names, transfer.posted events."""

import pytest

from ledger import services
from ledger.models import Account, Transaction
from ledger.signals import events_emitted
from tests.api_helpers import call, error, move, new_key, token
from tests.balances_helpers import currency, deposit, network_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def btc():
    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    return cur


def balance(user, cur, code):
    return services.balance(services.user_account(user, cur, code))


def transfer(raw, moves, currency="BTC", key=None):
    body = {"currency": currency, "transfers": moves}
    return call("POST", "/api/v1/transfers", raw, body, key=key or new_key())


def test_it_moves_money_between_a_users_accounts_and_between_users(btc):
    raw = token("transfers:write")
    response = transfer(
        raw,
        [
            move("alice", "balance", "alice", "lockedBalance", "0.30000000", "lock"),
            move("alice", "lockedBalance", "bob", "advancedTradingBalance", "0.10000000"),
        ],
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["currency"] == "BTC" and len(body["transfers"]) == 2
    first = body["transfers"][0]
    assert first["from"] == {"user": "alice", "account": "balance"}
    assert first["to"] == {"user": "alice", "account": "lockedBalance"}
    assert first["amount"] == "0.30000000" and first["label"] == "lock"
    assert Transaction.objects.get(pk=int(first["id"])).kind == "internal"
    assert balance("alice", btc, 201) == 70_000_000
    assert balance("alice", btc, 203) == 20_000_000
    assert balance("bob", btc, 202) == 10_000_000


def test_it_refuses_a_batch_whose_last_move_overdraws_and_writes_nothing(btc):
    raw = token("transfers:write")
    before = Transaction.objects.count()
    moves = [move("alice", "balance", "alice", "stakingLockedBalance", "0.00100000")] * 999
    moves.append(move("alice", "balance", "carol", "balance", "0.00100001"))
    response = transfer(raw, moves)
    assert response.status_code == 422
    assert error(response) == {
        "code": "insufficient_funds",
        "message": error(response)["message"],
        "field": "transfers.999",
    }
    assert Transaction.objects.count() == before and balance("alice", btc, 201) == 100_000_000


@pytest.mark.parametrize(
    "account, status, code",
    [
        ("withdrawLockedBalance", 422, "account_not_movable"),
        ("savings", 400, "unknown_account"),
    ],
)
def test_it_refuses_accounts_transfers_may_not_touch(btc, account, status, code):
    response = transfer(token("transfers:write"), [move("alice", "balance", "alice", account, "1")])
    assert response.status_code == status
    assert error(response)["code"] == code and error(response)["field"] == "transfers.0.to.account"
    assert balance("alice", btc, 201) == 100_000_000


@pytest.mark.parametrize(
    "body, status, field",
    [
        (
            {"currency": "XYZ", "transfers": [move("alice", "balance", "bob", "balance", "1")]},
            400,
            "currency",
        ),
        (
            {"currency": "BTC", "transfers": [move("alice", "balance", "bob", "balance", "0.1.2")]},
            400,
            "transfers.0.amount",
        ),
        (
            {"currency": "BTC", "transfers": [move("alice", "balance", "bob", "balance", "1e-9")]},
            400,
            "transfers.0.amount",
        ),
        (
            {"currency": "BTC", "transfers": [move("alice", "balance", "bob", "balance", "-1")]},
            422,
            "transfers.0",
        ),
        (
            {"currency": "BTC", "transfers": [move("alice", "balance", "alice", "balance", "1")]},
            422,
            "transfers.0",
        ),
        (
            {"currency": "BTC", "transfers": [move("al ice", "balance", "bob", "balance", "1")]},
            400,
            "transfers.0.from.user",
        ),
        ({"currency": "BTC", "transfers": []}, 400, "transfers"),
        (
            {"currency": "BTC", "transfers": [move("a", "balance", "b", "balance", 1)]},
            400,
            "transfers.0.amount",
        ),
        ({"currency": "BTC"}, 400, "transfers"),
        ("[not json", 400, None),
    ],
)
def test_it_answers_bad_input_with_a_4xx_naming_the_field_and_changes_nothing(
    btc, body, status, field
):
    before = Transaction.objects.count(), Account.objects.count()
    response = call("POST", "/api/v1/transfers", token("transfers:write"), body, key=new_key())
    assert response.status_code == status, response.content
    assert error(response).get("field") == field
    assert (Transaction.objects.count(), Account.objects.count()) == before


def test_it_refuses_more_than_1000_moves(btc):
    moves = [move("alice", "balance", "bob", "balance", "0.00000001")] * 1001
    response = transfer(token("transfers:write"), moves)
    assert response.status_code == 400 and error(response)["field"] == "transfers"


def test_it_needs_the_transfers_write_scope_and_a_key(btc):
    moves = [move("alice", "balance", "bob", "balance", "0.1")]
    refused = transfer(token("balances:read", "withdrawals:write"), moves)
    assert refused.status_code == 403 and error(refused)["code"] == "missing_scope"
    body = {"currency": "BTC", "transfers": moves}
    keyless = call("POST", "/api/v1/transfers", token("transfers:write"), body)
    assert keyless.status_code == 400 and error(keyless)["field"] == "Idempotency-Key"
    assert balance("alice", btc, 201) == 100_000_000


def test_it_emits_transfer_posted_in_the_api_vocabulary(btc):
    seen = []

    def receiver(rows, **kwargs):
        seen.extend(rows)

    events_emitted.connect(receiver)
    try:
        response = transfer(
            token("transfers:write"), [move("alice", "balance", "bob", "balance", "0.25")]
        )
    finally:
        events_emitted.disconnect(receiver)
    assert response.status_code == 201
    (event,) = seen
    assert (event.type, event.object_type) == ("transfer.posted", "transfer")
    assert event.object_id == response.json()["transfers"][0]["id"]
    assert event.data["amount"] == "0.25000000" and event.data["from"]["account"] == "balance"


def test_it_answers_a_wrong_method_in_the_error_shape(btc):
    response = call("GET", "/api/v1/transfers", token("transfers:write"))
    assert response.status_code == 405 and error(response)["code"] == "method_not_allowed"


@pytest.mark.django_db(transaction=True)
def test_it_never_takes_an_account_below_zero_under_concurrent_batches():
    from tests.balances_helpers import in_threads

    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    raw = token("transfers:write")
    moves = [move("alice", "balance", "alice", "lockedBalance", "0.40000000")]
    results = in_threads(4, lambda i: transfer(raw, moves))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 201, 422, 422], statuses
    assert balance("alice", cur, 201) == 20_000_000 and balance("alice", cur, 203) == 80_000_000


def test_it_records_the_token_as_the_author_of_the_moves(btc):
    response = transfer(
        token("transfers:write", name="trading engine"),
        [move("alice", "balance", "bob", "balance", "0.1")],
    )
    row = Transaction.objects.get(pk=int(response.json()["transfers"][0]["id"]))
    assert row.created_by.get_full_name() == "API token trading engine"
    assert not row.created_by.is_active and not row.created_by.has_usable_password()


@pytest.mark.django_db(transaction=True)
def test_it_never_deadlocks_two_batches_moving_money_in_opposite_directions():
    from tests.balances_helpers import in_threads

    cur = currency("BTC")
    network = network_account(cur)
    for user in ("alice", "bob"):
        deposit(network, user, 100_000_000)
    raw = token("transfers:write")
    directions = [
        [move("alice", "balance", "bob", "balance", "0.01")],
        [move("bob", "balance", "alice", "balance", "0.01")],
    ]
    statuses = []
    for _ in range(15):
        statuses += [r.status_code for r in in_threads(2, lambda i: transfer(raw, directions[i]))]
    assert statuses == [201] * 30, statuses
    assert balance("alice", cur, 201) == balance("bob", cur, 201) == 100_000_000


def test_it_answers_a_body_over_the_size_limit_with_400(btc, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    moves = [move("alice", "balance", "bob", "balance", "0.00000001", "x" * 200)] * 100
    response = transfer(token("transfers:write"), moves)
    assert response.status_code == 400 and error(response)["code"] == "request_too_large"
    assert balance("alice", btc, 201) == 100_000_000


@pytest.mark.django_db(transaction=True)  # the cache hears of a change when it commits
def test_it_shows_a_transfer_in_the_balances_query_at_once(balance_cache):
    from tests.test_graphql import ask, balances_query

    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    query = balances_query("alice")
    reader = token("balances:read")
    before = ask(query, reader).json()["data"]["user"]["currencies"][0]
    assert (before["balance"], before["lockedBalance"]) == ("1.00000000", "0.00000000")
    moves = [move("alice", "balance", "alice", "lockedBalance", "0.25")]
    assert transfer(token("transfers:write"), moves).status_code == 201
    after = ask(query, reader).json()["data"]["user"]["currencies"][0]
    assert (after["balance"], after["lockedBalance"]) == ("0.75000000", "0.25000000")
