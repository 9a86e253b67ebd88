"""The block.io backend against a loopback server that speaks block.io's v2 protocol."""

import logging

import pytest

from ledger.backends import (
    AlreadySent,
    BadReply,
    InsufficientFunds,
    InvalidAddress,
    NodeUnreachable,
    NotSent,
    OutcomeUnknown,
    TransactionNotFound,
)
from ledger.backends.blockio import BlockIoBackend
from ledger.money import AmountError
from tests.blockio_server import new_address


@pytest.fixture
def backend(blockio_wallet):
    b = blockio_wallet.get_backend()
    b.backoff = 0.01
    return b


def test_it_creates_and_validates_addresses(backend, blockio):
    address = backend.new_address("alice")
    assert blockio.addresses[address] == "alice"
    assert backend.validate_address(address)
    assert not backend.validate_address(
        "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
    )  # mainnet: wrong network
    assert not backend.validate_address(
        address[:-1] + ("x" if address[-1] != "x" else "y")
    )  # bad checksum


def test_it_reads_balances_as_exact_units(backend, blockio):
    mine = blockio.own_address()
    blockio.receive(mine, "1.23456789", confirmations=3)
    blockio.receive(mine, "0.00000001", confirmations=0)
    assert backend.get_balance(minconf=0) == 123_456_790
    assert backend.get_balance(minconf=1) == 123_456_789
    assert backend.address_balances([mine]) == {mine: 123_456_790}


def test_it_decodes_a_transaction_and_tells_ours_from_theirs(backend, blockio):
    mine = blockio.own_address()
    txid = blockio.receive(mine, "0.5", confirmations=2)
    info = backend.get_transaction(txid)
    assert info.confirmations == 2
    assert info.received() == {mine: 50_000_000}
    assert sum(info.sent().values()) == 12_345  # the payer's own output is not ours


def test_it_reports_unknown_transactions_per_txid(backend, blockio):
    txid = blockio.receive(blockio.own_address(), "0.1")
    result = backend.get_transactions([txid, "ab" * 32])
    assert result[txid].txid == txid
    assert isinstance(result["ab" * 32], TransactionNotFound)


def test_it_withdraws_once_with_the_fee_and_a_nonce(backend, blockio):
    blockio.receive(blockio.own_address(), "2", confirmations=6)
    dest = blockio.own_address()  # any valid testnet address
    txid = backend.send_many({dest: 30_000_000}, comment="broadcast-7", nonce="a1b2c3")
    assert blockio.nonces == {"a1b2c3": txid}
    assert backend.get_transaction(txid).fee == blockio.fee
    # block.io refuses a repeat within the hour: it proves the first one went, not that nothing did.
    with pytest.raises(AlreadySent, match="nonce"):
        backend.send_many({dest: 30_000_000}, comment="broadcast-7", nonce="a1b2c3")
    assert len(blockio.sent) == 1


def test_it_maps_withdraw_refusals(backend, blockio):
    blockio.receive(blockio.own_address(), "0.001", confirmations=6)
    with pytest.raises(InsufficientFunds):
        backend.send_many({blockio.own_address(): 10**8}, comment="a")
    with pytest.raises(InvalidAddress):
        backend.send_many(
            {"mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRheX": 1000}, comment="b"
        )  # checksum broken
    with pytest.raises(AmountError):
        backend.send_many({blockio.own_address(): 0.5}, comment="c")


def test_it_never_retries_a_withdraw_and_calls_a_timeout_unknown(blockio_wallet, blockio):
    backend = BlockIoBackend(blockio_wallet, timeout=1)
    blockio.receive(blockio.own_address(), "1", confirmations=6)
    blockio.fail_next("withdraw", "timeout")
    with pytest.raises(OutcomeUnknown, match="outcome unknown"):
        backend.send_many({blockio.own_address(): 1000}, comment="x")
    blockio.fail_next("withdraw", "500")
    with pytest.raises(OutcomeUnknown):
        backend.send_many({blockio.own_address(): 1000}, comment="y")
    blockio.fail_next("withdraw", "429")
    with pytest.raises(NotSent, match="rate-limited"):
        backend.send_many({blockio.own_address(): 1000}, comment="z")
    assert blockio.count("withdraw") == 3  # one request each: never repeated


def test_it_retries_reads_with_backoff_and_honours_429(backend, blockio):
    blockio.fail_next("get_balance", "429", "500")
    assert backend.get_balance() == 0
    assert blockio.count("get_balance") == 3
    blockio.fail_next("get_balance", "500", "500", "500")
    with pytest.raises(NodeUnreachable, match="HTTP 500 after 3 attempts"):
        backend.get_balance()


def test_it_refuses_malformed_replies_and_inexact_amounts(backend, blockio):
    blockio.fail_next("get_balance", "malformed")
    with pytest.raises(BadReply, match="not JSON"):
        backend.get_balance()
    blockio.fail_next("get_balance", "bad_amount")
    with pytest.raises(BadReply, match="more than 8 decimals"):
        backend.get_balance()
    blockio.fail_next("get_balance", "float_amount")
    with pytest.raises(BadReply, match="not a decimal string"):
        backend.get_balance()


def test_it_turns_a_fail_envelope_into_a_clear_error(backend, blockio):
    blockio.fail_next("get_balance", "fail")
    with pytest.raises(NotSent, match="Something went wrong on our side"):
        backend.get_balance()


def test_it_reports_a_dead_server_as_unreachable_and_nothing_sent(blockio_wallet, blockio):
    blockio.stop()
    backend = BlockIoBackend(blockio_wallet, timeout=1)
    backend.backoff = 0.01
    with pytest.raises(NodeUnreachable):
        backend.get_balance()
    with pytest.raises(NotSent, match="connection refused"):
        backend.send_many({blockio.own_address(): 1000}, comment="x")


def test_it_pages_through_received_transactions(backend, blockio):
    mine = blockio.own_address()
    txids = {blockio.receive(mine, "0.01") for _ in range(60)}  # three pages of 25
    pages = []
    seen = {e.txid for e in backend.iter_received(progress=pages.append)}
    assert seen == txids
    assert pages == [25, 25, 10, 0]
    (row,) = backend.list_received_by_address()
    assert (row.address, row.amount, len(row.txids)) == (mine, 60 * 10**6, 60)


def test_it_keeps_key_and_pin_out_of_errors_and_logs(blockio_wallet, blockio, caplog):
    backend = BlockIoBackend(blockio_wallet, timeout=1)
    backend.backoff = 0.01
    caplog.set_level(logging.DEBUG)
    errors = []
    for kinds in (("fail",), ("500", "500", "500"), ("malformed",)):
        blockio.fail_next("get_balance", *kinds)
        try:
            backend.get_balance()
        except Exception as exc:
            errors.append(repr(exc) + str(exc.__cause__) + str(exc.__context__))
    blockio.fail_next("withdraw", "timeout")
    try:
        backend.send_many({blockio.own_address(): 1}, comment="q")
    except OutcomeUnknown as exc:
        errors.append(repr(exc) + str(exc.__cause__) + str(exc.__context__))
    text = "\n".join(errors) + caplog.text
    assert len(errors) == 4
    assert blockio.api_key not in text and blockio.pin not in text
    masked = str(blockio_wallet.backend_settings_masked())
    assert blockio.api_key not in masked and blockio.pin not in masked


@pytest.fixture
def full_listener():
    """A loopback port whose accept queue is full: a connect there never completes (what a
    firewall dropping packets or a host that is down looks like)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    yield port
    filler.close()
    server.close()


def test_it_calls_a_connect_timeout_nothing_sent_and_a_read_timeout_unknown(
    blockio_wallet, blockio, full_listener
):
    blockio.receive(blockio.own_address(), "1", confirmations=6)
    blockio_wallet.backend_settings = dict(
        blockio_wallet.backend_settings, base_url=f"http://127.0.0.1:{full_listener}/api/v2/"
    )
    with pytest.raises(NotSent, match="nothing sent"):
        BlockIoBackend(blockio_wallet, timeout=1).send_many(
            {blockio.own_address(): 1000}, comment="c", nonce="n1"
        )
    blockio.fail_next("withdraw", "timeout")
    with pytest.raises(OutcomeUnknown):  # connected, request sent, no answer: it may have paid
        BlockIoBackend(_wallet(blockio), timeout=1).send_many(
            {blockio.own_address(): 1000}, comment="r", nonce="n2"
        )


def _wallet(blockio):
    from ledger.models import Wallet

    return Wallet.objects.get(backend="blockio")


def test_it_cuts_the_withdraw_timeouts_to_the_lease_and_sends_nothing_without_time(
    backend, blockio
):
    import time

    blockio.receive(blockio.own_address(), "1", confirmations=6)
    with pytest.raises(NotSent, match="lease"):
        backend.send_many(
            {blockio.own_address(): 1000},
            comment="late",
            nonce="n3",
            deadline=time.monotonic() + 0.5,
        )
    assert blockio.count("withdraw") == 0
    blockio.fail_next("withdraw", "timeout")  # answers after 3 s
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        backend.send_many(
            {blockio.own_address(): 1000}, comment="x", nonce="n4", deadline=time.monotonic() + 2.5
        )
    assert time.monotonic() - started < 2.5  # given up before the lease ends


def test_it_gives_a_segwit_transaction_its_txid_without_witness_data(backend, blockio):
    from tests.blockio_server import raw_tx, sha256d, stripped_tx

    mine = blockio.own_address()
    raw = raw_tx([(mine, 70_000_000)], segwit=True)
    assert raw[4:6] == b"\x00\x01"  # BIP 144 marker and flag
    stripped = stripped_tx(raw)
    assert len(stripped) == len(raw) - 2 - (
        1 + 1 + 71 + 1 + 33
    )  # marker, flag and one witness gone
    txid = sha256d(stripped)[::-1].hex()
    assert txid != sha256d(raw)[::-1].hex()  # the wtxid
    blockio.txs[txid] = {"hex": raw.hex(), "confirmations": 3, "received": [(mine, 70_000_000)]}

    info = backend.get_transaction(txid)

    assert (info.txid, info.confirmations, info.received()) == (txid, 3, {mine: 70_000_000})
    deposit = blockio.receive(mine, "0.25", segwit=True)
    assert backend.get_transaction(deposit).received() == {mine: 25_000_000}


def test_it_tells_its_own_spend_from_someone_elses_payment_of_the_same_outputs(backend, blockio):
    blockio.receive(blockio.own_address(), "1", confirmations=6)
    dest = new_address()[0]
    ours = backend.send_many({dest: 20_000_000}, comment="o", nonce="n5")
    theirs = blockio.foreign_payment({dest: 20_000_000})
    assert backend.get_transaction(theirs).sent() == {dest: 20_000_000}  # the outputs alone match
    assert backend.spends_own_coins(ours) is True
    assert backend.spends_own_coins(theirs) is False


def test_it_finds_its_sends_since_a_time_by_their_outputs(backend, blockio):
    from datetime import timedelta

    from django.utils import timezone

    blockio.receive(blockio.own_address(), "1", confirmations=6)
    dest = new_address()[0]
    before = timezone.now() - timedelta(seconds=5)
    txid = backend.send_many({dest: 10_000_000}, comment="f", nonce="n6")
    backend.send_many({dest: 10_000_001}, comment="g", nonce="n7")
    assert backend.find_sent({dest: 10_000_000}, before) == [txid]
    assert backend.find_sent({dest: 10_000_000}, timezone.now() + timedelta(seconds=60)) == []


def test_it_names_witness_v0_outputs_by_their_bech32_address():
    from ledger.backends.blockio import _script_address

    program = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")  # BIP 173's example
    assert (
        _script_address(b"\x00\x14" + program, (0, 5), "bc")
        == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    )
    assert _script_address(b"\x00\x14" + program, (0, 5), None) is None


def test_it_declares_its_capabilities_on_the_backend_class_read_without_a_node():
    from ledger.backends import BackendError, backend_class
    from ledger.models import Wallet

    blockio, bitcoind = Wallet(backend="blockio"), Wallet(backend="bitcoind")
    assert blockio.backend_class is BlockIoBackend
    assert blockio.backend_class.supports_nonce and not blockio.backend_class.keeps_comments
    assert not bitcoind.backend_class.supports_nonce and bitcoind.backend_class.signs_first
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        backend_class("nope")


def test_it_counts_an_output_to_our_own_address_in_its_own_send_as_paid(backend, blockio):
    from datetime import timedelta

    from django.utils import timezone

    blockio.receive(blockio.own_address(), "1", confirmations=6)
    ours = blockio.own_address("another user's deposit address")
    before = timezone.now() - timedelta(seconds=5)
    txid = backend.send_many({ours: 10_000_000}, comment="to-self", nonce="n8")
    fresh = type(backend)(backend.wallet)  # another run: it learns the send is ours

    assert fresh.find_sent({ours: 10_000_000}, before) == [txid]
    assert fresh.get_transaction(txid).sent()[ours] == 10_000_000
    assert fresh.get_transaction(txid).received()[ours] == 10_000_000
    assert fresh.find_sent({ours: 10_000_000, new_address()[0]: 5}, before) == []
    assert fresh.find_sent({ours: 10_000_000, new_address()[0]: 5}, before, any_output=True) == [
        txid
    ]
