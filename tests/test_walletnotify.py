"""`manage.py walletnotify CURRENCY TXID`, as bitcoind's -walletnotify calls it."""

import sys

import pytest
from django.core.management import call_command

from ledger import services
from ledger.models import NetworkTransaction, Transaction
from tests.support import REPO, make_currency, make_wallet, pay_from_outside, wait_until


@pytest.mark.parametrize(
    "args, message",
    [
        (["DOGE", "ab" * 32], "unknown currency 'DOGE'"),
        (["BTC", "xyz"], "is not a transaction id"),
        (["BTC", "ab" * 31], "is not a transaction id"),
        (["BTC", "zz" * 32], "is not a transaction id"),
    ],
)
def test_it_refuses_bad_input_with_exit_code_2_and_writes_nothing(db, capsys, args, message):
    make_currency("BTC")
    with pytest.raises(SystemExit) as exit_info:
        call_command("walletnotify", *args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not NetworkTransaction.objects.exists() and not Transaction.objects.exists()


def test_it_records_a_deposit_at_once(db, two_nodes, capsys):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC"), ours)
    address = services.new_receiving_address(wallet, "alice")
    txid = pay_from_outside(ours, outside, address.address, "0.3")
    call_command("walletnotify", "btc", txid.upper())
    assert "discovered 1" in capsys.readouterr().out
    assert NetworkTransaction.objects.get(txid=txid).type == "deposit"


@pytest.mark.django_db(transaction=True)
def test_it_is_called_by_bitcoind_itself(fresh_node, child_env):
    """A real node with -walletnotify runs our command in a child process on the test database."""
    outside = fresh_node()
    command = f"{sys.executable} {REPO / 'manage.py'} walletnotify BTC %s"
    ours = fresh_node(peer=outside, walletnotify=command, env=child_env)
    outside.generate(101)
    wait_until(lambda: ours.rpc("getblockcount") == 101)
    wallet = make_wallet(make_currency("BTC"), ours)
    address = services.new_receiving_address(wallet, "bob")
    txid = outside.rpc("sendtoaddress", address.address, "0.25")
    row = wait_until(
        lambda: NetworkTransaction.objects.filter(txid=txid).first(),
        timeout=30,
        what="walletnotify to record the deposit",
    )
    assert row.type == "deposit" and row.wallet_id == wallet.pk


def test_it_prints_the_poll_summary_through_update_confirmations(db, two_nodes, capsys):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC"), ours)
    address = services.new_receiving_address(wallet, "carol")
    pay_from_outside(ours, outside, address.address, "0.1")
    call_command("update_confirmations", "--currency", "btc")
    assert (
        "BTC: checked 1, changed 0, credited 0, closed 0, failed 0, discovered 1"
        in capsys.readouterr().out
    )


def test_it_refuses_an_unknown_currency_to_update_confirmations(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="Unknown currency 'nope'"):
        call_command("update_confirmations", "--currency", "nope")
