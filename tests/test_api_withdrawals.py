"""POST /api/v1/withdrawals and GET /api/v1/withdrawals/{id} in process: the Admin's queueing
rules (address, balance, approval, minimum), the token as the requester and never its own
approver, the state as the model names it, reads by id and by idempotency key."""

import pytest
from django.contrib.admin.models import LogEntry

from broadcasts import approvals
from broadcasts.errors import DecisionError
from broadcasts.models import OutgoingTransaction, WithdrawalRule
from ledger import services
from ledger.models import Transaction
from tests.api_helpers import call, error, new_key, token
from tests.support import credit_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def funded(wallet):
    credit_user(wallet, "alice", 100_000_000)
    return wallet


@pytest.fixture
def address(node):
    return node.rpc("getnewaddress")


def request(raw, body, key=None):
    return call("POST", "/api/v1/withdrawals", raw, body, key=key or new_key())


def body(address, amount="0.10000000", user="alice", **extra):
    return {"user": user, "currency": "BTC", "address": address, "amount": amount, **extra}


def alice(wallet):
    return services.balance(services.user_account("alice", wallet.currency, 201))


def test_it_queues_a_withdrawal_with_the_token_as_requester(funded, address):
    raw = token("withdrawals:write", "withdrawals:read", name="shop")
    response = request(raw, body(address, label="order 7"))
    assert response.status_code == 201, response.content
    out = response.json()
    assert (out["state"], out["user"], out["amount"]) == ("queued", "alice", "0.10000000")
    assert out["address"] == address and out["label"] == "order 7" and out["txid"] is None
    row = OutgoingTransaction.objects.get(pk=int(out["id"]))
    assert row.created_by.get_full_name() == "API token shop"
    assert LogEntry.objects.filter(object_id=str(row.pk), user=row.created_by).exists()
    assert alice(funded) == 90_000_000
    read = call("GET", f"/api/v1/withdrawals/{out['id']}", raw)
    assert read.status_code == 200 and read.json() == out


def test_it_waits_for_a_person_to_approve_and_is_never_its_own_approver(funded, address, operator):
    WithdrawalRule.objects.create(currency=funded.currency, approval_above=5_000_000)
    raw = token("withdrawals:write", "withdrawals:read")
    out = request(raw, body(address)).json()
    assert out["state"] == "awaiting_approval" and "above" in out["reason"]
    row = OutgoingTransaction.objects.get(pk=int(out["id"]))
    with pytest.raises(DecisionError):
        approvals.approve(row, row.created_by)  # the token's own user row may not approve
    approvals.approve(row, operator)
    assert call("GET", f"/api/v1/withdrawals/{out['id']}", raw).json()["state"] == "queued"


def test_it_reads_a_withdrawal_by_its_idempotency_key_for_the_same_token_only(funded, address):
    raw, key = token("withdrawals:write", "withdrawals:read"), new_key()
    created = request(raw, body(address), key=key).json()
    found = call("GET", f"/api/v1/withdrawals?idempotency_key={key}", raw)
    assert found.status_code == 200 and found.json()["id"] == created["id"]
    other = call("GET", f"/api/v1/withdrawals?idempotency_key={key}", token("withdrawals:read"))
    assert other.status_code == 404 and error(other)["code"] == "not_found"


def test_it_queues_once_per_key(funded, address):
    raw, key = token("withdrawals:write"), new_key()
    first, again = request(raw, body(address), key), request(raw, body(address), key)
    assert first.status_code == again.status_code == 201 and first.content == again.content
    assert OutgoingTransaction.objects.count() == 1 and alice(funded) == 90_000_000


@pytest.mark.parametrize(
    "change, status, code",
    [
        (dict(amount="2"), 422, "insufficient_funds"),
        (dict(amount="0.1.0"), 400, "invalid_amount"),
        (dict(amount="0.000000001"), 400, "invalid_amount"),
        (dict(amount="0"), 400, "invalid_amount"),
        (dict(user="nobody"), 422, "unknown_user"),
        (dict(address="not-an-address"), 422, "invalid_address"),
        (dict(currency="XYZ"), 400, "unknown_currency"),
        (dict(address=" "), 400, "address_required"),
        (dict(address=""), 400, "invalid"),
    ],
)
def test_it_refuses_what_the_admin_would_refuse_with_a_code_and_writes_nothing(
    funded, address, change, status, code
):
    before = Transaction.objects.count()
    response = request(token("withdrawals:write"), {**body(address), **change})
    assert response.status_code == status, response.content
    assert error(response)["code"] == code
    assert not OutgoingTransaction.objects.exists() and Transaction.objects.count() == before


def test_it_answers_404_and_403_in_the_error_shape(funded):
    missing = call("GET", "/api/v1/withdrawals/999999", token("withdrawals:read"))
    assert missing.status_code == 404 and error(missing)["code"] == "not_found"
    refused = call("GET", "/api/v1/withdrawals/1", token("withdrawals:write"))
    assert refused.status_code == 403 and error(refused)["code"] == "missing_scope"
    bad_id = call("GET", "/api/v1/withdrawals/abc", token("withdrawals:read"))
    assert bad_id.status_code == 400


def test_it_refuses_below_the_minimum_and_answers_503_while_the_node_is_down(funded, address):
    WithdrawalRule.objects.create(currency=funded.currency, minimum_amount=50_000_000)
    small = request(token("withdrawals:write"), body(address))
    assert small.status_code == 422 and error(small)["code"] == "below_minimum"
    funded.backend_settings = {"url": "http://u:p@127.0.0.1:9"}
    funded.save()
    down = request(token("withdrawals:write"), body(address, amount="0.6"))
    assert down.status_code == 503 and error(down)["code"] == "node_unreachable"
    assert not OutgoingTransaction.objects.exists()


def test_it_reads_the_txid_fee_share_and_confirmations_once_sent(btc, node, fresh_node):
    from broadcasts.broadcaster import Broadcaster
    from broadcasts.models import Broadcast
    from tests.support import funded_wallet

    wallet, _ = funded_wallet(btc, fresh_node(), user_id="alice")
    raw = token("withdrawals:write", "withdrawals:read")
    ids = [
        request(raw, body(node.rpc("getnewaddress"), amount=amount)).json()["id"]
        for amount in ("0.30000000", "0.10000000")
    ]
    Broadcaster(wallet).run()
    broadcast = Broadcast.objects.get()
    first, second = (call("GET", f"/api/v1/withdrawals/{i}", raw).json() for i in ids)
    assert first["state"] == second["state"] == "broadcasted"
    assert first["txid"] == second["txid"] == broadcast.txid and broadcast.fee > 0
    assert first["confirmations"] == 0
    # Pro rata, rounded down: three quarters and one quarter of the fee.
    fee = broadcast.fee
    assert first["fee"] == btc.format(fee * 3 // 4) and second["fee"] == btc.format(fee // 4)
