"""The states in which a broadcast owns its outgoing transactions are one constant, which the
one-active-broadcast-per-wallet constraint reads."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from broadcasts.models import ACTIVE_STATES, Broadcast
from ledger.models import Wallet

DEAD = {"url": "http://127.0.0.1:9"}  # nothing listens there


def test_it_builds_the_constraint_from_the_constant():
    constraint = next(
        c for c in Broadcast._meta.constraints if c.name == "broadcast_one_active_per_wallet"
    )
    assert constraint.condition.children == [("state__in", list(ACTIVE_STATES))]
    assert Broadcast.ACTIVE_STATES is ACTIVE_STATES
    assert set(ACTIVE_STATES) == {Broadcast.State.COLLECTED, Broadcast.State.OPENED}


@pytest.mark.django_db
@pytest.mark.parametrize("second", ACTIVE_STATES)
def test_it_refuses_a_second_active_broadcast_of_a_wallet(btc, second):
    wallet = Wallet.objects.create(name="states-w", currency=btc, backend_settings=DEAD)
    Broadcast.objects.create(wallet=wallet, state=Broadcast.State.COLLECTED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Broadcast.objects.create(wallet=wallet, state=second, opened_at=timezone.now())
    Broadcast.objects.create(wallet=wallet, state=Broadcast.State.FAILED, opened_at=timezone.now())


def test_it_keeps_no_dead_helpers():
    from django.db import models

    from ledger import actors
    from ledger.models import Account, Transaction

    assert not hasattr(Broadcast, "is_closed") and not hasattr(Broadcast, "CLOSED_STATES")
    assert not hasattr(Account, "is_system")
    assert not hasattr(Transaction, "amount_display")
    assert Transaction.clean is models.Model.clean
    # Nothing reads an actor's kind: `actors.person(by)` tells the system from a person.
    assert not hasattr(actors.SYSTEM, "is_system")


def test_it_shares_a_fee_pro_rata_never_above_it():
    b = Broadcast(total=300, fee=100, signed_fee=90)
    shares = [b.fee_share(a) for a in (100, 100, 100)]
    assert shares == [33, 33, 33] and sum(shares) <= 100
    unbooked = Broadcast(total=300, fee=None, signed_fee=90)
    assert unbooked.fee_share(100) is None and unbooked.fee_share(100, signed=True) == 30
    assert Broadcast(total=0, fee=5).fee_share(1) is None
