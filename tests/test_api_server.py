"""/api/v1/ over real HTTP against gunicorn (`manage.py serve`, two workers) on PostgreSQL:
one key sent twice at once, a process killed between the money's commit and its reply then
retried, a 1,000-move batch whose last move overdraws, an address while the node is down, and
the OpenAPI document through a real validator. One server for the whole module."""

import json
import os
import threading

import pytest
import requests
from openapi_spec_validator import validate

from api.models import IdempotencyKey
from broadcasts.models import OutgoingTransaction
from ledger import services
from ledger.models import Account, Address, Transaction
from tests.api_helpers import move, new_key, token
from tests.balances_helpers import currency, deposit, network_account
from tests.prodserver import production_env, start_serve, stop
from tests.support import REPO, credit_user, make_currency, make_wallet, offline_wallet, run_python

pytestmark = pytest.mark.django_db(transaction=True)
PAUSE = 0.5  # every fresh money request holds its key this long before committing


@pytest.fixture(scope="module")
def server(postgres, django_db_setup, tmp_path_factory):
    from django.db import connection

    tmp = tmp_path_factory.mktemp("api-server")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env["DATABASE_URL"] = (
        f"postgres://postgres@127.0.0.1:{postgres.port}/{connection.settings_dict['NAME']}"
    )
    env = production_env(
        env,
        tmp,
        # The test settings for their fault points (the pause below); DEBUG stays off.
        DJANGO_SETTINGS_MODULE="devtools.settings_test",
        CRYPTOADMIN_FAULT=f"api.idempotency.before_commit=pause:{PAUSE}",
        API_RATE_LIMIT="",
        # The server outlives the flushes of this module's tests and of others on this worker.
        FRESH_CONTENT_TYPES="1",
    )
    proc, base = start_serve(env, tmp / "serve.log", "--web-workers", "2", "--no-scheduler")
    yield base
    stop(proc)


def send(base, path, raw, body=None, key=None, method="POST"):
    headers = {"Authorization": f"Bearer {raw}", "X-Forwarded-Proto": "https"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.request(method, base + path, json=body, headers=headers, timeout=60)


def test_it_queues_one_withdrawal_when_two_requests_send_one_key_at_once(server, node):
    wallet = make_wallet(make_currency("BTC"), node)
    credit_user(wallet, "alice", 100_000_000)
    raw, key = token("withdrawals:write"), new_key()
    body = {
        "user": "alice",
        "currency": "BTC",
        "address": node.rpc("getnewaddress"),
        "amount": "0.25",
    }
    barrier, answers = threading.Barrier(2), []

    def one():
        barrier.wait(10)
        answers.append(send(server, "/api/v1/withdrawals", raw, body, key))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses in ([201, 201], [201, 409]), [a.text for a in answers]
    assert len({a.json()["id"] for a in answers if a.status_code == 201}) == 1
    assert OutgoingTransaction.objects.count() == 1
    assert Transaction.objects.filter(kind="pending_outgoing").count() == 1
    account = services.user_account("alice", wallet.currency, 201)
    assert services.balance(account) == 75_000_000


def test_it_answers_the_first_answer_to_a_retry_after_a_crash_between_commit_and_reply(
    server, child_env
):
    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    raw, key = token("transfers:write"), new_key()
    body = {"currency": "BTC", "transfers": [move("alice", "balance", "bob", "balance", "0.4")]}
    env = dict(child_env, CRYPTOADMIN_FAULT="api.idempotency.after_commit=kill")
    args = ["POST", "/api/v1/transfers", raw, key, json.dumps(body)]
    died = run_python(env, "tests/api_child.py", *args)
    assert died.returncode == -9 and not died.stdout, (died.stdout, died.stderr[-2000:])
    (row,) = Transaction.objects.filter(kind="internal")  # committed before the kill
    retry = send(server, "/api/v1/transfers", raw, body, key)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["transfers"][0]["id"] == str(row.pk)
    assert Transaction.objects.filter(kind="internal").count() == 1
    assert services.balance(services.user_account("alice", cur, 201)) == 60_000_000


def test_it_writes_nothing_for_a_1000_move_batch_whose_last_move_overdraws(server):
    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    raw = token("transfers:write")
    moves = [move("alice", "balance", f"user-{i}", "lockedBalance", "0.001") for i in range(999)]
    moves.append(move("alice", "balance", "bob", "balance", "0.00100001"))
    before = Transaction.objects.count()
    body = {"currency": "BTC", "transfers": moves}
    response = send(server, "/api/v1/transfers", raw, body, new_key())
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert response.json()["error"]["field"] == "transfers.999"
    assert Transaction.objects.count() == before and not IdempotencyKey.objects.exists()
    assert not Account.objects.filter(user_id="user-5").exists()
    moves[-1]["amount"] = "0.001"  # the same batch within the balance: all 1,000 posted
    posted = send(server, "/api/v1/transfers", raw, body, new_key())
    assert posted.status_code == 201 and len(posted.json()["transfers"]) == 1000
    assert services.balance(services.user_account("alice", cur, 201)) == 0


def test_it_answers_503_for_an_address_while_the_node_is_down(server):
    offline_wallet(make_currency("BTC"))
    body = {"user": "alice", "currency": "BTC"}
    response = send(server, "/api/v1/addresses", token("addresses:write"), body)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "node_unreachable"
    assert not Address.objects.exists() and not Account.objects.filter(user_id="alice").exists()


def test_it_serves_an_openapi_document_a_validator_accepts(server):
    response = requests.get(server + "/api/v1/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    paths = document["paths"]
    assert {"/api/v1/addresses", "/api/v1/withdrawals", "/api/v1/transfers"} <= set(paths)
    assert "/api/v1/withdrawals/{withdrawal_id}" in paths
    params = {p["name"] for p in paths["/api/v1/transfers"]["post"]["parameters"]}
    assert "Idempotency-Key" in params
