"""One definition of a transaction id (ledger/txids.py), read by the constraint, the backends and
the hooks."""

import pytest
from django.db import IntegrityError, transaction

from ledger import txids
from ledger.backends.base import BadReply, check_txid
from ledger.models import NetworkTransaction

GOOD = "ab" * 32

DEAD = {"url": "http://127.0.0.1:9"}  # nothing listens there


def test_it_accepts_64_lowercase_hex_only():
    assert txids.is_txid(GOOD)
    assert not txids.is_txid(GOOD.upper())
    assert not txids.is_txid(GOOD[:-1])
    assert not txids.is_txid(GOOD + "\n")
    assert not txids.is_txid("zz" * 32)
    assert not txids.is_txid(None)


def test_it_parses_an_operators_txid():
    assert txids.parse_txid(f"  {GOOD.upper()} ") == GOOD
    assert txids.parse_txid("not a txid") is None
    assert txids.parse_txid(None) is None


def test_it_makes_the_backends_check_the_same_rule():
    assert check_txid(GOOD, "test") == GOOD
    with pytest.raises(BadReply):
        check_txid("zz" * 32, "test")


def test_it_is_the_pattern_of_the_constraint():
    constraint = next(
        c for c in NetworkTransaction._meta.constraints if c.name == "network_tx_txid_is_hex64"
    )
    assert constraint.condition.children == [("txid__regex", txids.TXID_PATTERN)]


@pytest.mark.django_db
def test_it_makes_the_database_refuse_a_bad_txid(btc):
    from ledger.models import Wallet

    wallet = Wallet.objects.create(name="txid-w", currency=btc, backend_settings=DEAD)
    with pytest.raises(IntegrityError), transaction.atomic():
        NetworkTransaction.objects.create(
            currency=btc, wallet=wallet, txid=GOOD.upper(), type="deposit"
        )


@pytest.mark.django_db
def test_it_checks_the_operators_txid_when_closing_a_broadcast(btc, superuser):
    from django.utils import timezone

    from broadcasts.closing import close_as_broadcasted
    from broadcasts.models import Broadcast
    from cryptoadmin.errors import CloseRefused
    from ledger.models import Wallet

    wallet = Wallet.objects.create(name="txid-close", currency=btc, backend_settings=DEAD)
    broadcast = Broadcast.objects.create(
        wallet=wallet, state="opened", label="txid-close-1", opened_at=timezone.now()
    )

    class NoNode:
        def get_transaction(self, txid):
            raise AssertionError("a malformed txid must be refused before the node is asked")

        spends_own_coins = get_transaction

    for bad in ("zz" * 32, GOOD[:-1], GOOD + "00"):
        with pytest.raises(CloseRefused, match="64 hexadecimal"):
            close_as_broadcasted(broadcast, bad, superuser, "found it", backend=NoNode())
    asked = []

    class Records(NoNode):
        def get_transaction(self, txid):  # whichever question the node is asked first
            asked.append(txid)
            raise CloseRefused("stop here")

        spends_own_coins = get_transaction

    with pytest.raises(CloseRefused, match="stop here"):
        close_as_broadcasted(
            broadcast, f" {GOOD.upper()} ", superuser, "found it", backend=Records()
        )
    assert asked == [GOOD]
