"""No input makes the API answer 500 or write money it should not: random JSON (and random
near-valid transfers) to the money endpoints, each answer a 2xx or a 4xx in the error shape."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import services
from tests.api_helpers import call, new_key, token
from tests.balances_helpers import currency, deposit, network_account

pytestmark = pytest.mark.django_db

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
PARTY = st.fixed_dictionaries(
    {
        "user": st.sampled_from(["alice", "bob", "", "a b", "x" * 130]) | SCALARS,
        "account": st.sampled_from(["balance", "lockedBalance", "withdrawLockedBalance", "nope"])
        | SCALARS,
    }
)
AMOUNT = (
    st.sampled_from(["0.1", "-1", "0", "1e-9", "1e400", "NaN", "0.123456789", "99999999999"])
    | SCALARS
)
MOVE = st.fixed_dictionaries({"from": PARTY, "to": PARTY, "amount": AMOUNT}) | JSON
BODY = (
    st.fixed_dictionaries(
        {
            "currency": st.sampled_from(["BTC", "XYZ", ""]) | SCALARS,
            "transfers": st.lists(MOVE, max_size=3),
        }
    )
    | JSON
)


@pytest.fixture
def funded():
    cur = currency("BTC")
    deposit(network_account(cur), "alice", 100_000_000)
    return cur, token("transfers:write", "withdrawals:write")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODY)
def test_it_never_answers_500_to_any_transfer_body(funded, body):
    cur, raw = funded
    response = call("POST", "/api/v1/transfers", raw, body, key=new_key())
    assert response.status_code in (201, 400, 422), response.content
    error = response.json().get("error")
    assert response.status_code == 201 or set(error) <= {"code", "message", "field"}
    alice = services.balance(services.user_account("alice", cur, 201))
    assert alice >= 0
