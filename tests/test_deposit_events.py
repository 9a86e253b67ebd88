"""events/deposits.py: deposit.seen once, deposit.confirmations on each change until closed
(derived from the wallet's tip for mined open rows), deposit.credited once, deposit.conflicted,
nothing twice."""

import pytest

from events.models import Event
from ledger.models import NetworkTransaction as NT
from ledger.signals import deposits_changed

pytestmark = pytest.mark.django_db


def deposit(wallet, n=1, **fields):
    return NT.objects.create(
        currency=wallet.currency,
        wallet=wallet,
        txid=f"{n:064x}",
        type="deposit",
        amount=10_000_000,
        **fields,
    )


def emitted():
    return [(e.type, e.data["confirmations"]) for e in Event.objects.order_by("id")]


def tip(wallet, height):
    wallet.last_block_height = height
    wallet.save(update_fields=["last_block_height"])


def test_it_reports_seen_then_each_change_of_confirmations_until_closed(db_wallet):
    row = deposit(db_wallet)
    deposits_changed.send(None, ids=[row.pk])
    deposits_changed.send(None, ids=[row.pk])  # nothing new: nothing emitted
    NT.objects.filter(pk=row.pk).update(block_height=100, block_hash="ab" * 32, confirmations=1)
    tip(db_wallet, 100)
    deposits_changed.send(None, wallet_id=db_wallet.pk)
    tip(db_wallet, 102)  # two blocks: the poller writes nothing on the row
    deposits_changed.send(None, wallet_id=db_wallet.pk)
    NT.objects.filter(pk=row.pk).update(
        state="closed", confirmations=6, credited_at="2026-01-01T00:00Z"
    )
    tip(db_wallet, 105)
    deposits_changed.send(None, wallet_id=db_wallet.pk)
    tip(db_wallet, 110)
    deposits_changed.send(None, wallet_id=db_wallet.pk)  # closed and reported: never again
    assert emitted() == [
        ("deposit.seen", 0),
        ("deposit.confirmations", 1),
        ("deposit.confirmations", 3),
        ("deposit.confirmations", 6),
        ("deposit.credited", 6),  # (a credit without ledger entries here: no credits listed)
    ]
    events = Event.objects.order_by("id")
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    last = events.last().data
    assert (last["credited"], last["amount"], last["txid"], last["currency"]) == (
        True,
        "0.10000000",
        row.txid,
        "BTC",
    )


def test_it_reports_a_drop_and_a_conflict(db_wallet):
    row = deposit(db_wallet, confirmations=2)
    deposits_changed.send(None, ids=[row.pk])
    NT.objects.filter(pk=row.pk).update(confirmations=0, state="conflicted")
    deposits_changed.send(None, ids=[row.pk])
    assert emitted() == [
        ("deposit.seen", 2),
        ("deposit.confirmations", 0),
        ("deposit.conflicted", 0),
    ]


def test_it_takes_the_senders_fresher_count(db_wallet):
    row = deposit(db_wallet)
    deposits_changed.send(None, ids=[row.pk])
    deposits_changed.send(None, ids=[row.pk], confirmations={row.pk: 3})
    assert emitted() == [("deposit.seen", 0), ("deposit.confirmations", 3)]
