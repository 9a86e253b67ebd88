"""A person's page: from a user id to their balances per account, addresses, deposits,
withdrawals and ledger entries, each with a link; reached from the user balances lookup."""

import pytest

from broadcasts.models import OutgoingTransaction
from ledger import services
from ledger.models import Account, Address, NetworkTransaction
from tests.support import grant

pytestmark = pytest.mark.django_db


def _person(wallet, user_id="carol"):
    btc = wallet.currency
    accounts = services.user_accounts(user_id, btc)
    address = Address.objects.create(
        currency=btc,
        wallet=wallet,
        account=accounts[201],
        address="bcrt1qcarolsreceivingaddress000000",
        kind="receiving",
    )
    row = NetworkTransaction.objects.create(
        currency=btc, wallet=wallet, txid="cd" * 32, type="deposit", amount=200_000_000
    )
    network = services.system_account(wallet, Account.Code.NETWORK)
    credit = services.post(
        network, accounts[201], 200_000_000, "deposit", network_transaction=row, address=address
    )
    lock = services.post(accounts[201], accounts[204], 50_000_000, "pending_outgoing")
    out = OutgoingTransaction.objects.create(
        wallet=wallet,
        currency=btc,
        account=accounts[201],
        hold_account=accounts[204],
        address="bcrt1qsomewhereoutside0000000000000",
        amount=50_000_000,
        lock_entry=lock,
    )
    return address, row, credit, out


def test_it_shows_a_persons_balances_addresses_deposits_withdrawals_and_entries(
    client, viewer, db_wallet
):
    address, row, credit, out = _person(db_wallet)
    client.force_login(viewer)
    page = client.get("/admin/person/carol/").content.decode()
    assert ">withdraw locked<" in page and "1.50000000 BTC" in page and "0.50000000 BTC" in page
    assert f"/admin/ledger/address/{address.pk}/change/" in page
    assert f"/admin/ledger/networktransaction/{row.pk}/change/" in page
    assert f"/admin/broadcasts/outgoingtransaction/{out.pk}/change/" in page
    assert f"/admin/ledger/transaction/{credit.pk}/change/" in page
    assert "/admin/ledger/transaction/?user=carol" in page  # every entry, as a filtered list


def test_it_links_the_lookup_and_the_deposits_list_to_the_persons_page(
    client, viewer, db_wallet, balance_cache
):
    _person(db_wallet)
    client.force_login(viewer)
    lookup = client.get("/admin/balances/apitoken/user-balances/", {"user_id": "carol"})
    assert "/admin/person/carol/" in lookup.content.decode()
    assert (
        "/admin/person/carol/" in client.get("/admin/ledger/networktransaction/").content.decode()
    )


def test_it_answers_an_unknown_person_with_a_404_and_an_outsider_with_a_403(
    client, viewer, staff, db
):
    client.force_login(viewer)
    assert client.get("/admin/person/nobody-here/").status_code == 404
    client.force_login(staff)
    assert client.get("/admin/person/nobody-here/").status_code == 403
    grant(staff, "ledger.view_account")
    assert client.get("/admin/person/nobody-here/").status_code == 404


def test_it_gives_a_person_a_new_receiving_address_with_the_permission(
    client, operator, superuser, wallet
):
    from ledger.models import Address

    services.user_accounts("dora", wallet.currency)
    url = "/admin/person/dora/address/"
    client.force_login(operator)
    assert client.post(url, {"wallet": wallet.pk}).status_code == 403
    assert not Address.objects.filter(account__user_id="dora").exists()
    client.force_login(superuser)
    assert (
        'action="/admin/person/dora/address/"' in client.get("/admin/person/dora/").content.decode()
    )
    response = client.post(url, {"wallet": wallet.pk})
    assert response.status_code == 302 and response["Location"] == "/admin/person/dora/"
    (address,) = Address.objects.filter(account__user_id="dora")
    assert address.wallet == wallet and address.account.code == 201
    assert client.post(url, {"wallet": "nope"}).status_code == 400
