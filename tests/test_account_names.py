"""Accounts are named as the balances query names them, never by their code, wherever a person
reads (lists, detail pages, the user balances page, history entries)."""

import re

import pytest
from django.test import Client

from balances.table import FIELD_ACCOUNTS, account_name
from ledger import services
from ledger.models import Account, Transaction
from tests.balances_helpers import currency, deposit, move, network_account
from tests.support import grant

CODES = re.compile(r"\b(201|202|203|204|205|206|230|900|910|920)\b")


def test_it_names_each_user_account_as_its_balances_field():
    assert account_name(FIELD_ACCOUNTS["withdrawLockedBalance"]) == "withdraw locked"
    assert account_name(FIELD_ACCOUNTS["balance"]) == "balance"
    for code in FIELD_ACCOUNTS.values():
        assert Account.Code(code).label == account_name(code)
    assert not [c.label for c in Account.Code if CODES.search(c.label)]


@pytest.mark.django_db
def test_it_shows_no_account_code_in_accounts_and_entries():
    btc = currency("BTC")
    deposit(network_account(btc), "u-n", 300_000_000)
    entry = move("u-n", btc, 100_000_000, 201, 204)
    account = services.user_accounts("u-n", btc)[204]
    assert str(account) == "withdraw locked of u-n (BTC)"
    assert not CODES.search(str(Transaction.objects.get(pk=entry.pk)))
    assert "->" not in str(entry)


@pytest.mark.django_db
def test_it_heads_the_user_balances_page_with_names(viewer, balance_cache):
    grant(viewer, "balances.view_user_balances")
    btc = currency("BTC")
    deposit(network_account(btc), "u-h", 1)
    client = Client()
    client.force_login(viewer)
    page = client.get("/admin/balances/apitoken/user-balances/", {"user_id": "u-h"})
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", page.content.decode())
    assert "withdraw locked" in heads and not [h for h in heads if CODES.search(h)]
