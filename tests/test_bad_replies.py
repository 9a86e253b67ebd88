"""Malformed node replies become BadReply on that wallet or row; the other wallets are polled.

A loopback JSON-RPC double (tests/rpc_double.py) answers what the real node never would."""

import pytest

from ledger import services
from ledger.backends import BadReply, Refused
from ledger.backends.bitcoind import BitcoindBackend
from ledger.confirmations.entry_points import update_confirmations
from ledger.models import Address, NetworkTransaction, Transaction, Wallet
from tests.rpc_double import RpcDouble, single, wallet_tx
from tests.support import make_currency, make_wallet

pytestmark = pytest.mark.django_db

T1, T2 = "a1" * 32, "b2" * 32
GOOD_SINCE = {"transactions": [], "lastblock": "11" * 32}


@pytest.fixture
def double():
    server = RpcDouble().start()
    yield server
    server.stop()


@pytest.fixture
def currency():
    return make_currency("BTC", crediting_threshold=2, polling_threshold=4)


@pytest.fixture
def bad_wallet(currency, double):
    # Named to sort first: wallets are polled in name order, so the good one comes after it.
    wallet = Wallet.objects.create(
        name="a-bad", currency=currency, backend="bitcoind", backend_settings={"url": double.url}
    )
    for user, address in (("alice", "addr-alice"), ("bob", "addr-bob")):
        Address.objects.create(
            currency=currency,
            wallet=wallet,
            account=services.user_account(user, currency),
            address=address,
            kind=Address.Kind.RECEIVING,
        )
    return wallet


def answering(since=None, batch=None, single_tx=None):
    def answer(request):
        if isinstance(request, list):
            if request and request[0]["method"] == "getblockchaininfo":
                # The tip call (getblockchaininfo + listtransactions in one batch): null, as any
                # call the test does not script, so the wallet is polled by txid.
                return [single(None, q) for q in request]
            return batch(request)
        if request["method"] == "listsinceblock":
            return (since or since_reply(GOOD_SINCE))(request)
        if request["method"] == "gettransaction":
            return single_tx(request)
        return single(None, request)

    return answer


def since_reply(result):
    return lambda request: single(result, request)


def answers(request, results):
    # Requests beyond the results (the tip call a batch may end with) stay unanswered.
    return [
        {"result": r, "error": None, "id": q["id"]} for q, r in zip(request, results, strict=False)
    ]


# The whole listsinceblock reply is unusable: BadReply for the wallet.
WHOLE_SINCE_BAD = {
    "null result": since_reply(None),
    "no transactions list": since_reply({"lastblock": "11" * 32, "transactions": None}),
    "entry without txid": since_reply(
        {
            "lastblock": "11" * 32,
            "transactions": [
                {"address": "addr-alice", "category": "receive", "amount": 1.0, "confirmations": 3}
            ],
        }
    ),
    "entry not an object": since_reply({"lastblock": "11" * 32, "transactions": [None]}),
    "entry with a txid that is not one": since_reply(
        {
            "lastblock": "11" * 32,
            "transactions": [
                {
                    "txid": "zz",
                    "address": "addr-alice",
                    "category": "receive",
                    "amount": 1.0,
                    "confirmations": 3,
                }
            ],
        }
    ),
    "no lastblock": since_reply({"transactions": []}),
}

# Batched gettransaction replies for [T1, T2]: each row gets a BadReply of its own.
BAD_BATCHES = {
    "unknown ids": lambda rq: [
        {"result": wallet_tx(T1, 9, "addr-alice", 1.0), "error": None, "id": 7},
        {"result": wallet_tx(T2, 9, "addr-bob", 2.0), "error": None, "id": "x"},
    ],
    "duplicate ids": lambda rq: [
        {"result": wallet_tx(T1, 9, "addr-alice", 1.0), "error": None, "id": rq[0]["id"]},
        {"result": wallet_tx(T1, 9, "addr-alice", 1.0), "error": None, "id": rq[0]["id"]},
        {"result": wallet_tx(T2, 9, "addr-bob", 2.0), "error": None, "id": rq[1]["id"]},
        {"result": wallet_tx(T2, 9, "addr-bob", 3.0), "error": None, "id": rq[1]["id"]},
    ],
    "swapped answers": lambda rq: answers(
        rq,
        [
            wallet_tx(rq[1]["params"][0], 9, "addr-bob", 2.0),
            wallet_tx(rq[0]["params"][0], 9, "addr-alice", 1.0),
        ],
    ),
    "null results": lambda rq: answers(rq, [None, None]),
    "not a list": lambda rq: {"result": None, "error": None, "id": 0},
}


def test_it_refuses_each_malformed_listsinceblock_reply_as_a_bad_reply(bad_wallet, double):
    backend = BitcoindBackend(bad_wallet)
    for case, since in WHOLE_SINCE_BAD.items():
        double.answer = answering(since=since)
        with pytest.raises(BadReply):
            backend.list_since_block(None, 5)
            pytest.fail(f"{case}: no BadReply")


def test_it_puts_a_bad_reply_in_place_of_a_malformed_listsinceblock_entry(bad_wallet, double):
    double.answer = answering(
        since=since_reply(
            {
                "lastblock": "11" * 32,
                "transactions": [
                    {
                        "txid": T1,
                        "address": "addr-alice",
                        "category": "receive",
                        "amount": "1.0",
                        "confirmations": 3,
                    },
                    {
                        "txid": T2,
                        "address": "addr-bob",
                        "category": "receive",
                        "amount": 2.0,
                        "confirmations": 3,
                    },
                ],
            }
        )
    )
    since = BitcoindBackend(bad_wallet).list_since_block(None, 5)
    assert [t.txid for t in since.transactions] == [T2]
    assert isinstance(since.errors[T1], BadReply)


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_it_puts_a_bad_reply_in_place_of_each_malformed_batch_answer(bad_wallet, double, case):
    double.answer = answering(batch=BAD_BATCHES[case])
    if case == "not a list":
        with pytest.raises(BadReply):
            BitcoindBackend(bad_wallet).get_transactions([T1, T2])
        return
    result = BitcoindBackend(bad_wallet).get_transactions([T1, T2])
    assert set(result) == {T1, T2}
    assert all(isinstance(result[t], BadReply) for t in (T1, T2)), result


def test_it_refuses_a_gettransaction_answer_for_another_txid(bad_wallet, double):
    double.answer = answering(single_tx=lambda rq: single(wallet_tx(T2, 9, "addr-bob", 2.0), rq))
    with pytest.raises(BadReply, match="another txid"):
        BitcoindBackend(bad_wallet).get_transaction(T1)


@pytest.fixture
def good_deposit(currency, node):
    wallet = make_wallet(currency, node, name="b-good")
    address = services.new_receiving_address(wallet, "carol")
    txid = node.rpc("sendtoaddress", address.address, "0.5")
    node.generate(2)
    return wallet, txid


@pytest.mark.parametrize("case", sorted(WHOLE_SINCE_BAD))
def test_it_polls_the_other_wallets_when_one_listsinceblock_reply_is_malformed(
    bad_wallet, double, good_deposit, currency, case
):
    double.answer = answering(
        since=WHOLE_SINCE_BAD[case],
        batch=lambda rq: answers(rq, [wallet_tx(q["params"][0], 1, "addr-alice", 1.0) for q in rq]),
    )
    row = NetworkTransaction.objects.create(
        currency=currency, wallet=bad_wallet, txid=T1, type="deposit"
    )
    summary = update_confirmations(currency)
    good, txid = good_deposit
    assert Transaction.objects.filter(kind="deposit", network_transaction__txid=txid).count() == 1
    assert services.balance(services.user_account("carol", currency)) == 50_000_000
    bad_wallet.refresh_from_db()
    assert "BadReply" in bad_wallet.last_poll_error and bad_wallet.last_poll_error_at is not None
    assert bad_wallet.last_block_hash == ""  # the cursor never moves past a reply it could not read
    # Its open rows are still polled by txid: this one moved to 1 confirmation.
    row.refresh_from_db()
    assert row.confirmations == 1
    assert summary.failed >= 1
    good.refresh_from_db()
    assert good.last_poll_error == "" and good.last_polled_at is not None


@pytest.mark.parametrize("case", sorted(set(BAD_BATCHES) - {"not a list"}))
def test_it_records_a_malformed_batch_answer_on_its_row_and_credits_nothing_wrong(
    bad_wallet, double, good_deposit, currency, case
):
    double.answer = answering(batch=BAD_BATCHES[case])
    rows = [
        NetworkTransaction.objects.create(
            currency=currency, wallet=bad_wallet, txid=t, type="deposit"
        )
        for t in (T1, T2)
    ]
    update_confirmations(currency)
    for row in rows:
        row.refresh_from_db()
        assert row.last_error and row.last_error_at is not None, case
        assert (row.state, row.credited_at) == ("open", None)
    assert services.balance(services.user_account("alice", currency)) == 0
    assert services.balance(services.user_account("bob", currency)) == 0
    assert services.balance(services.user_account("carol", currency)) == 50_000_000


def test_it_records_a_whole_batch_failure_on_the_wallet_and_polls_the_others(
    bad_wallet, double, good_deposit, currency
):
    double.answer = answering(batch=BAD_BATCHES["not a list"])
    NetworkTransaction.objects.create(currency=currency, wallet=bad_wallet, txid=T1, type="deposit")
    update_confirmations(currency)
    bad_wallet.refresh_from_db()
    assert "BadReply" in bad_wallet.last_poll_error
    assert services.balance(services.user_account("carol", currency)) == 50_000_000


def test_it_refuses_a_reply_that_is_not_json_or_a_bare_value_as_a_bad_reply(bad_wallet):
    # What python-bitcoinrpc refused, our reading of the reply refuses the same way: a body
    # that is not application/json (a proxy's error page), and JSON that is no object.
    page = RpcDouble(lambda request: b"<html>502 Bad Gateway</html>", content_type="text/html")
    page.start()
    try:
        bad_wallet.backend_settings = {"url": page.url}
        with pytest.raises(BadReply, match="non-JSON HTTP response with '200 OK'"):
            BitcoindBackend(bad_wallet).get_balance()
        with pytest.raises(BadReply, match="non-JSON"):
            BitcoindBackend(bad_wallet).get_transactions([T1])
    finally:
        page.stop()
    for body in (b"5", b"null", b"true", b"{not json"):
        bare = RpcDouble(lambda request, body=body: body).start()
        try:
            bad_wallet.backend_settings = {"url": bare.url}
            with pytest.raises(BadReply, match="unreadable reply"):
                BitcoindBackend(bad_wallet).get_balance()
        finally:
            bare.stop()


def test_it_gives_a_refused_send_its_reason_as_a_code(bad_wallet, double):
    def refusing(message):
        def answer(request):
            error = {"code": -26, "message": message}
            return {"result": None, "error": error, "id": request.get("id")}

        return answer

    backend = BitcoindBackend(bad_wallet)
    double.answer = refusing("64: dust")
    with pytest.raises(Refused) as dust:
        backend.send_raw("00", T1)
    double.answer = refusing("66: insufficient priority")
    with pytest.raises(Refused) as policy:
        backend.send_raw("00", T1)
    assert (dust.value.reason, policy.value.reason) == (Refused.DUST, Refused.POLICY)
