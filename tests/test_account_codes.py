"""The user and system account codes have one home (ledger.models) that the constraint, the
balance cache and the services read."""

import pytest

from balances import cache
from ledger import services
from ledger.models import SYSTEM_CODES, USER_CODES, Account


def _owner_constraint():
    return next(c for c in Account._meta.constraints if c.name == "account_owner_matches_code")


def _codes_in(q):
    for child in q.children:
        if isinstance(child, tuple) and child[0] == "code__in":
            return child[1]
    return None


def test_it_reads_the_codes_from_one_constant_in_the_constraint():
    user_side, system_side = _owner_constraint().condition.children
    assert tuple(_codes_in(user_side)) == USER_CODES == Account.USER_CODES
    assert tuple(_codes_in(system_side)) == SYSTEM_CODES == Account.SYSTEM_CODES


def test_it_reads_the_codes_from_one_constant_in_the_balance_cache():
    assert cache.ACCOUNT_CODES is Account.USER_CODES
    assert f"a.code IN ({', '.join(str(c) for c in USER_CODES)})" in cache.LOAD_SQL


@pytest.mark.django_db
def test_it_creates_exactly_the_user_codes(btc):
    assert tuple(sorted(services.user_accounts("codes-1", btc))) == tuple(sorted(USER_CODES))
