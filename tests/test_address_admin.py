"""Addresses → Add: a person gives a user a receiving address from a wallet's node (a fresh
install's first deposit needs no shell and no API client)."""

import pytest

from tests.support import offline_wallet

pytestmark = pytest.mark.django_db

ADD = "/admin/ledger/address/add/"


def test_it_gives_a_user_an_address_from_the_wallets_node(client, superuser, wallet, node):
    from ledger.models import Address

    client.force_login(superuser)
    page = client.get(ADD).content.decode()
    assert 'name="user_id"' in page and 'name="wallet"' in page
    assert not Address.objects.exists()  # a GET asks no node and writes nothing
    response = client.post(ADD, {"wallet": wallet.pk, "user_id": "alice"})
    assert response.status_code == 302, response.content.decode()[:2000]
    address = Address.objects.get()
    assert (address.account.user_id, address.account.code, address.wallet) == ("alice", 201, wallet)
    assert node.rpc("validateaddress", address.address)["ismine"] is True
    history = client.get(f"/admin/ledger/address/{address.pk}/history/").content.decode()
    assert "Given to user alice" in history


def test_it_refuses_without_the_permission_or_the_node_and_writes_nothing(
    client, superuser, operator, btc
):
    from ledger.models import Address

    down = offline_wallet(btc)
    client.force_login(operator)
    assert client.post(ADD, {"wallet": down.pk, "user_id": "alice"}).status_code == 403
    client.force_login(superuser)
    response = client.post(ADD, {"wallet": down.pk, "user_id": "alice"})
    assert response.status_code == 200 and "[node_unreachable]" in response.content.decode()
    assert not Address.objects.exists()
    bad = client.post(ADD, {"wallet": down.pk, "user_id": "no spaces"})
    assert "Use 1 to 128 letters" in bad.content.decode()
