"""The bitcoind backend against a real regtest node."""

import json
import logging
from decimal import Decimal
from types import SimpleNamespace

import pytest

from ledger.backends import (
    InsufficientFunds,
    InvalidAddress,
    NodeUnreachable,
    NotSent,
    OutcomeUnknown,
    TransactionNotFound,
)
from ledger.backends.bitcoind import BitcoindBackend
from ledger.money import AmountError
from tests.support import make_currency, make_wallet

pytestmark = pytest.mark.django_db


def test_it_sends_many_with_a_comment_and_reads_it_back(wallet, node):
    backend = wallet.get_backend()
    a, b = backend.new_address("a"), backend.new_address("b")
    txid = backend.send_many({a: 12345678, b: 1}, comment="broadcast:test-1")
    info = backend.get_transaction(txid)
    assert info.confirmations == 0
    assert info.comment == "broadcast:test-1"
    assert info.received() == {a: 12345678, b: 1}
    assert info.fee and info.fee > 0
    node.generate(1)
    assert backend.get_transaction(txid).confirmations == 1
    assert txid in backend.find_by_comment("broadcast:test-1")


def test_it_lists_received_by_address_including_unconfirmed(wallet, node):
    backend = wallet.get_backend()
    address = backend.new_address()
    txid = node.rpc("sendtoaddress", address, "0.5")
    rows = {r.address: r for r in backend.list_received_by_address(minconf=0)}
    assert rows[address].amount == 50_000_000
    assert txid in rows[address].txids


def test_it_batches_gettransaction_and_keeps_per_item_errors(wallet, node):
    backend = wallet.get_backend()
    address = backend.new_address()
    txids = [node.rpc("sendtoaddress", address, "0.01") for _ in range(3)]
    unknown = "00" * 32
    result = backend.get_transactions(txids + [unknown])
    assert all(result[t].txid == t for t in txids)
    assert isinstance(result[unknown], TransactionNotFound)


def test_it_lists_since_a_block(wallet, node):
    backend = wallet.get_backend()
    tip = node.rpc("getbestblockhash")
    address = backend.new_address()
    txid = node.rpc("sendtoaddress", address, "0.02")
    since = backend.list_since_block(tip)
    assert txid in {t.txid for t in since.transactions}
    assert since.lastblock == node.rpc("getbestblockhash")


def test_it_refuses_a_float_before_it_reaches_the_node(btc):
    # Port 9 on loopback: nothing listens. A float must fail locally, not as unreachable.
    from ledger.models import Wallet

    dead = Wallet.objects.create(
        name="dead", currency=btc, backend_settings={"url": "http://u:p@127.0.0.1:9"}
    )
    backend = dead.get_backend()
    with pytest.raises(AmountError, match="float"):
        backend.send_many({"mz8882qW87DRKEn35P2eZaKoJ5PG8ysL1k": 0.1}, comment="x")
    with pytest.raises(AmountError, match="Decimal"):
        backend.call_once("sendtoaddress", "mz8882qW87DRKEn35P2eZaKoJ5PG8ysL1k", Decimal("0.1"))
    with pytest.raises(AmountError, match="float"):
        backend.call("estimatefee", 1.5)


def test_it_maps_node_errors_to_our_exceptions(wallet):
    backend = wallet.get_backend()
    with pytest.raises(InvalidAddress, match="Invalid Bitcoin address"):
        backend.send_many({"not-an-address": 1000}, comment="x")
    with pytest.raises(InsufficientFunds, match="(?i)insufficient funds"):
        backend.send_many({backend.new_address(): 21_000_000 * 10**8}, comment="x")
    with pytest.raises(TransactionNotFound):
        backend.get_transaction("11" * 32)


def test_it_reports_a_stopped_node_as_unreachable_and_survives_a_restart(db, fresh_node):
    server = fresh_node()
    wallet = make_wallet(make_currency("BTC"), server)
    backend = BitcoindBackend(wallet, timeout=5)
    height = backend.block_height()
    server.stop(remove=False)
    with pytest.raises(NotSent, match="unreachable"):
        backend.block_height()
    with pytest.raises(NodeUnreachable):
        backend.get_balance()
    server.start()
    # The same backend instance: its kept connection died with the node; it reconnects.
    assert backend.block_height() == height
    server.restart()
    assert backend.block_height() == height
    assert isinstance(backend.get_balance(), int)


def test_it_reports_wrong_credentials_clearly(btc, node):
    from ledger.models import Wallet

    bad = Wallet.objects.create(
        name="bad-auth",
        currency=btc,
        backend_settings={"url": f"http://nobody:wrong@127.0.0.1:{node.rpc_port}"},
    )
    with pytest.raises(NotSent, match="authentication failed") as info:
        bad.get_backend().block_height()
    assert "wrong" not in str(info.value)


def test_it_decodes_percent_encoded_credentials(btc, node):
    # A password holding '/', '#' or '@' can only be written percent-encoded in the URL.
    from urllib.parse import urlsplit

    from ledger.models import Wallet

    parts = urlsplit(node.url)
    encoded = "".join(f"%{ord(ch):02X}" for ch in parts.password)
    wallet = Wallet.objects.create(
        name="encoded",
        currency=btc,
        backend_settings={
            "url": f"http://{parts.username}:{encoded}@{parts.hostname}:{parts.port}"
        },
    )
    assert wallet.get_backend().block_height() == node.rpc("getblockcount")


def test_it_masks_credentials_in_settings_shown_to_people(wallet):
    masked = wallet.backend_settings_masked()
    assert wallet.get_backend().url.split("@")[0].split(":")[-1] not in str(masked)
    assert masked["url"].startswith("http://•••@127.0.0.1:")


def test_it_reports_a_failed_account_gathering_as_not_sent_and_never_calls_sendmany(db, fresh_node):
    """Gathering the node's accounts before sendmany is bookkeeping: if it fails, the broadcast
    must come out as 'nothing sent' (back to the queue), never as an interrupted broadcast."""
    server = fresh_node()
    server.generate(101)
    server.rpc("sendtoaddress", server.rpc("getnewaddress", "legacy"), "5")
    server.generate(1)
    called = []

    class MoveTimesOut(BitcoindBackend):
        def call_once(self, method, *params):
            called.append(method)
            if method == "move":
                raise OutcomeUnknown("move: timeout (simulated)")
            return super().call_once(method, *params)

    backend = MoveTimesOut(make_wallet(make_currency("BTC"), server))
    with pytest.raises(NotSent, match="before sendmany"):
        backend.send_many({server.rpc("getnewaddress"): 10**8}, comment="gather-fails")
    assert called == ["move"]
    assert backend.find_by_comment("gather-fails") == []
    assert server.rpc("getbalance", "legacy", 1) == 5


def test_it_sends_nothing_without_time_left_in_the_lease_and_proves_its_own_spends(wallet, node):
    import time

    backend = wallet.get_backend()
    with pytest.raises(NotSent, match="lease"):
        backend.send_many(
            {backend.new_address(): 1000}, comment="no-time-left", deadline=time.monotonic() + 0.5
        )
    assert backend.find_by_comment("no-time-left") == []
    txid = backend.send_many(
        {node.rpc("getnewaddress"): 1000}, comment="in-time", deadline=time.monotonic() + 30
    )
    assert backend.spends_own_coins(txid) is True
    coinbase = node.rpc("getblock", node.rpc("getblockhash", 1))["tx"][0]
    assert backend.spends_own_coins(coinbase) is False


def test_it_reads_a_reply_once_and_never_encodes_it_again(wallet, node, monkeypatch, caplog):
    """python-bitcoinrpc encodes every reply back to JSON for a debug log line, debug logging
    on or not: for a listreceivedbyaddress of 100,000 rows that took longer than reading it."""
    from bitcoinrpc import authproxy

    encoded = []

    def dumps(value, *args, **kwargs):
        encoded.append(json.dumps(value, *args, **kwargs))
        return encoded[-1]

    monkeypatch.setattr(authproxy, "json", SimpleNamespace(dumps=dumps, loads=json.loads))
    backend = wallet.get_backend()
    address = backend.new_address()
    node.rpc("sendtoaddress", address, "0.12345678")
    encoded.clear()
    rows = {r.address: r for r in backend.list_received_by_address(minconf=0)}
    assert rows[address].amount == 12_345_678  # still read exactly, as a Decimal
    assert isinstance(backend.call("getbalance", "*", 0), Decimal)
    assert not any(address in text for text in encoded), "the reply was encoded again"
    # With debug logging on, python-bitcoinrpc's logger still shows each reply.
    caplog.set_level(logging.DEBUG, logger="BitcoinRPC")
    backend.list_received_by_address(minconf=0)
    assert address in caplog.text


def test_it_builds_from_given_coins_locked_or_not_and_tells_which_coins_are_spent(wallet, node):
    import time

    backend = wallet.get_backend()
    coin = next(u for u in node.rpc("listunspent") if u["amount"] >= 1)
    given = f"{coin['txid']}:{coin['vout']}"
    backend.lock_coins([given])
    dest = node.rpc("getnewaddress")
    try:
        # Far more than the given coin holds: the node adds coins and keeps the locked one.
        signed = backend.build_signed({dest: int(coin["amount"] * 10**8) + 10**8}, inputs=[given])
        assert given in signed.inputs and len(signed.inputs) >= 2
        with pytest.raises(NotSent, match="lease"):
            backend.build_signed({dest: 1000}, inputs=[given], deadline=time.monotonic() + 0.5)
        assert backend.unspent_coins(signed.inputs) == set(signed.inputs)
        backend.send_raw(signed.raw, signed.txid)
        assert backend.unspent_coins(signed.inputs) == set()  # spent in the mempool
        assert backend.spender_confirmations(signed.inputs) == 0
        assert backend.spender_confirmations(signed.inputs, exclude=signed.txid) is None
    finally:
        backend.lock_coins([given], lock=False)


def test_it_reads_the_tip_with_the_newest_wallet_transaction_not_the_whole_wallet():
    """getwalletinfo sums the wallet's balances over its whole history: the tip call reads the
    newest few listtransactions entries instead, whose cost does not grow with it."""
    from tests.rpc_double import RpcDouble, single

    newest = "c3" * 32
    entries = [{"txid": "a1" * 32, "category": "send"}, {"txid": newest, "category": "receive"}]

    def answer(request):
        replies = {
            "getblockchaininfo": {"blocks": 7, "bestblockhash": "b7" * 32},
            "listtransactions": entries + [{"category": "move"}],  # a move has no txid
        }
        return [single(replies.get(q["method"]), q) for q in request]

    double = RpcDouble(answer).start()
    try:
        currency = make_currency("BTC")
        wallet = make_wallet(currency, SimpleNamespace(url=double.url, rpc_port=0))
        tip = BitcoindBackend(wallet, timeout=5).chain_tip()
    finally:
        double.stop()
    assert (tip.height, tip.hash, tip.newest_tx) == (7, "b7" * 32, newest)
    methods = [q["method"] for batch in double.requests for q in batch]
    assert methods == ["getblockchaininfo", "listtransactions"]
