"""Rescanning receiving addresses finds deposits the books missed."""

import pytest
from django.core.management import CommandError, call_command

from ledger import services
from ledger.actors import SYSTEM
from ledger.models import NetworkTransaction
from ledger.rescan import rescan_addresses, rescan_wallet
from tests.support import make_currency, make_wallet, pay_from_outside


@pytest.fixture
def setup(db, two_nodes):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC"), ours)
    return wallet, ours, outside


def test_it_finds_a_deposit_made_while_nothing_was_polling(setup):
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "alice")
    txid = pay_from_outside(ours, outside, address.address, "0.7")  # unconfirmed: still found
    result = rescan_wallet(wallet)
    assert result["found"] == 1 and result["txids"] == [txid]
    row = NetworkTransaction.objects.get(txid=txid)
    assert (row.type, row.state, row.wallet_id) == ("deposit", "open", wallet.pk)
    assert rescan_wallet(wallet)["found"] == 0  # known now: not recorded twice
    wallet.refresh_from_db()
    assert wallet.last_rescan_at is not None and wallet.last_rescan_result["found"] == 0
    # The tracker takes over and credits it exactly once.
    from ledger.confirmations.entry_points import update_confirmations
    from ledger.models import Transaction
    from tests.support import wait_until

    outside.generate(3)
    wait_until(lambda: ours.rpc("getblockcount") == outside.rpc("getblockcount"))
    for _ in range(3):
        update_confirmations(wallet.currency)
    assert list(Transaction.objects.filter(kind="deposit").values_list("amount", flat=True)) == [
        70_000_000
    ]
    assert services.balance(address.account) == 70_000_000


def test_it_ignores_receives_on_addresses_that_are_not_ours(setup):
    wallet, ours, outside = setup
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "1")
    assert rescan_wallet(wallet)["found"] == 0
    assert not NetworkTransaction.objects.exists()


def test_it_pages_past_a_page_of_only_sends(setup):
    wallet, ours, outside = setup
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "20", mine=1)
    address = services.new_receiving_address(wallet, "bob")
    early = [pay_from_outside(ours, outside, address.address, "0.1") for _ in range(6)]
    for _ in range(12):
        ours.rpc("sendtoaddress", outside.rpc("getnewaddress"), "0.01")
    late = [pay_from_outside(ours, outside, address.address, "0.1") for _ in range(6)]
    backend = wallet.get_backend()
    # The layout this test is about: with pages of 5, some page holds sends only.
    pages = [backend.list_transactions(5, skip) for skip in range(0, 40, 5)]
    assert any(p and all(e["category"] == "send" for e in p) for p in pages)
    seen = []
    result = rescan_wallet(wallet, page_size=5, progress=seen.append)
    assert set(result["txids"]) == set(early + late)
    assert sum(seen) >= 24  # read the whole history (overlapping pages count once)


def test_it_prints_what_it_found_through_the_command(setup, capsys):
    wallet, ours, outside = setup
    address = services.new_receiving_address(wallet, "carol")
    pay_from_outside(ours, outside, address.address, "0.2")
    call_command("rescan_addresses", "--currency", "btc")
    assert f"{wallet.name}: 1 missed deposit(s) found" in capsys.readouterr().out


def test_it_refuses_an_unknown_currency(db):
    with pytest.raises(CommandError, match="Unknown currency 'XYZ'"):
        call_command("rescan_addresses", "--currency", "XYZ")


def test_it_rescans_every_enabled_wallet(setup):
    wallet, *_ = setup
    assert list(rescan_addresses(by=SYSTEM)) == [wallet.name]


def test_it_queues_a_rescan_from_the_admin_for_permitted_users_only(
    client, operator, viewer, setup
):
    from django_q.models import OrmQ

    from tests.support import grant

    wallet, *_ = setup
    grant(viewer, "ledger.view_wallet")
    client.force_login(viewer)
    page = client.get("/admin/ledger/wallet/")
    assert b"rescan_now" not in page.content
    client.post("/admin/ledger/wallet/", {"action": "rescan_now", "_selected_action": [wallet.pk]})
    assert OrmQ.objects.count() == 0

    grant(operator, "ledger.view_wallet", "ledger.rescan_wallet")
    client.force_login(operator)
    assert b"rescan_now" in client.get("/admin/ledger/wallet/").content
    response = client.post(
        "/admin/ledger/wallet/",
        {"action": "rescan_now", "_selected_action": [wallet.pk]},
        follow=True,
    )
    assert "Rescan queued for 1 wallet:" in response.content.decode()
    assert OrmQ.objects.count() == 1


def test_it_rescans_and_queues_only_for_permitted_actors(viewer, wallet):
    from django.core.exceptions import PermissionDenied
    from django_q.models import OrmQ

    from ledger.rescan import queue_rescan

    with pytest.raises(PermissionDenied):
        queue_rescan([wallet], by=viewer)
    with pytest.raises(PermissionDenied):
        rescan_addresses(by=viewer)
    assert not OrmQ.objects.exists()
    wallet.refresh_from_db()
    assert wallet.last_rescan_at is None
