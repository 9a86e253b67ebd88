"""API requests in a child process on an SQLite file (DATABASE_URL), through Django's full
stack (the test client): tests run several at once to see SQLite serialise them.

python -m tests.api_sqlite_child setup        -> prints a transfers:write token
python -m tests.api_sqlite_child send TOKEN KEY AMOUNT -> prints status and body
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devtools.settings_test")

import django  # noqa: E402

django.setup()


def setup():
    from balances.models import ApiToken
    from tests.balances_helpers import currency, deposit, network_account

    deposit(network_account(currency("BTC")), "alice", 100_000_000)
    print(ApiToken.issue("sqlite", scopes=["transfers:write"])[1], flush=True)


def send(token, key, amount):
    from django.test import Client

    move = {
        "from": {"user": "alice", "account": "balance"},
        "to": {"user": "alice", "account": "lockedBalance"},
        "amount": amount,
    }
    response = Client().post(
        "/api/v1/transfers",
        json.dumps({"currency": "BTC", "transfers": [move]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    print(response.status_code, response.content.decode(), flush=True)


if __name__ == "__main__":
    {"setup": setup, "send": send}[sys.argv[1]](*sys.argv[2:])
