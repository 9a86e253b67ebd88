"""The demo's product (ops/demo_traffic.py) drives the books through /api/v1/ over HTTP, so
every column of the balances query moves under `make run`."""

import random

import pytest

from ledger import services
from ledger.models import USER_CODES, AccountBalance, Address, Transaction
from ops.demo_traffic import ProductTraffic
from tests.support import credit_user

pytestmark = pytest.mark.django_db(transaction=True)
USERS = ("alice", "bob", "carol")


def test_it_moves_every_balance_column_through_the_api(live_server, wallet, node):
    for user in USERS:
        credit_user(wallet, user, 100_000_000)
    random.seed(7)
    product = ProductTraffic(live_server.url, USERS)
    statuses = [status for _ in range(20) for status in product.shuffle()]
    statuses += [product.withdraw(node.rpc("getnewaddress")) for _ in range(3)]
    statuses.append(product.new_address())
    assert statuses.count(201) >= 20 and set(statuses) <= {201, 422}, statuses
    moved_into = set(
        Transaction.objects.filter(destination__user_id__in=USERS)
        .exclude(kind="import")
        .values_list("destination__code", flat=True)
    )
    assert moved_into == set(USER_CODES)  # money went into every column
    assert Address.objects.filter(wallet=wallet).count() == 1
    books = sum(
        services.balances(
            AccountBalance.objects.filter(account__user_id__in=USERS).values_list(
                "account_id", flat=True
            )
        ).values()
    )
    assert books == 300_000_000  # moves between users' accounts create no money
