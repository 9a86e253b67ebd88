"""The block.io backend against a loopback server that speaks block.io's v2 protocol."""
import logging

import pytest

from ledger.backends import (
    BadReply, InsufficientFunds, InvalidAddress, NodeUnreachable, NotSent, OutcomeUnknown, TransactionNotFound,
)
from ledger.backends.blockio import BlockIoBackend
from ledger.money import AmountError


@pytest.fixture
def backend(blockio_wallet):
    b = blockio_wallet.get_backend()
    b.backoff = 0.01
    return b


def test_it_creates_and_validates_addresses(backend, blockio):
    address = backend.new_address("alice")
    assert blockio.addresses[address] == "alice"
    assert backend.validate_address(address)
    assert not backend.validate_address("1BoatSLRHtKNngkdXEeobR76b53LETtpyT")  # mainnet: wrong network
    assert not backend.validate_address(address[:-1] + ("x" if address[-1] != "x" else "y"))  # bad checksum


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
    txid = backend.send_many({dest: 30_000_000}, comment="broadcast-7")
    assert blockio.nonces == {"broadcast-7": txid}
    assert backend.get_transaction(txid).fee == blockio.fee
    with pytest.raises(NotSent, match="Nonce already used"):  # block.io refuses a repeat: nothing sent
        backend.send_many({dest: 30_000_000}, comment="broadcast-7")


def test_it_maps_withdraw_refusals(backend, blockio):
    blockio.receive(blockio.own_address(), "0.001", confirmations=6)
    with pytest.raises(InsufficientFunds):
        backend.send_many({blockio.own_address(): 10**8}, comment="a")
    with pytest.raises(InvalidAddress):
        backend.send_many({"mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRheX": 1000}, comment="b")  # checksum broken
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
