"""The balances table is defined once (balances/table.py): the GraphQL reply and the admin's
"User balances" page render the same columns and the same rows."""

import re

import pytest
from django.test import Client

from balances import admin as balances_admin
from balances import schema, table
from balances.models import ApiToken
from tests.balances_helpers import currency, deposit, move, network_account
from tests.support import grant

pytestmark = pytest.mark.django_db


def test_it_has_one_column_map():
    assert schema.FIELD_ACCOUNTS is table.FIELD_ACCOUNTS
    assert balances_admin.FIELD_ACCOUNTS is table.FIELD_ACCOUNTS
    assert sorted(table.FIELD_ACCOUNTS.values()) == [201, 202, 203, 204, 205, 206, 230]


def test_it_renders_the_same_rows_in_graphql_and_the_admin(balance_cache, viewer):
    btc, usdt = currency("BTC"), currency("USDT", decimals=6)
    deposit(network_account(btc), "u-t", 250_000_000)
    move("u-t", btc, 100_000_000, 201, 202)
    move("u-t", btc, 7, 201, 204)
    deposit(network_account(usdt), "u-t", 1_500_000)
    fields = " ".join(table.FIELD_ACCOUNTS)
    reply = (
        Client()
        .post(
            "/graphql",
            {"query": f'query {{ user(id: "u-t") {{ currencies {{ id enabled {fields} }} }} }}'},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue('t')[1]}",
        )
        .json()
    )
    from_graphql = [
        [c["id"], *(c[f] for f in table.FIELD_ACCOUNTS)]
        for c in reply["data"]["user"]["currencies"]
    ]

    grant(viewer, "balances.view_user_balances")
    client = Client()
    client.force_login(viewer)
    page = client.get(
        "/admin/balances/apitoken/user-balances/", {"user_id": "u-t"}
    ).content.decode()
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    # The admin shows each amount with its currency's code ("1.50000000 BTC"); the API gives
    # the decimal alone. The figures must be the same.
    from_admin = [
        [cells[0], *(c.removesuffix(f" {cells[0]}") for c in cells[2:])]
        for cells in (
            [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)
        )
    ]

    assert from_graphql == from_admin
    assert from_graphql[0] == [
        "BTC",
        "1.49999993",
        "1.00000000",
        "0.00000000",
        "0.00000000",
        "0.00000007",
        "0.00000000",
        "0.00000000",
    ]
    assert from_graphql[1][:2] == ["USDT", "1.500000"]
