"""Operators and viewers at work, in a real browser against the real server, PostgreSQL and
nodes."""

import re

import pytest
from django.utils import timezone

from broadcasts.broadcaster import Broadcaster
from broadcasts.models import Broadcast
from broadcasts.withdrawals import send_external
from ledger import imports, services
from ledger.confirmations.entry_points import update_confirmations
from tests.browser import login, screenshot
from tests.support import make_currency, make_wallet, pay_from_outside, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _mine(ours, outside, n):
    outside.generate(n)
    wait_until(lambda: ours.rpc("getblockcount") == outside.rpc("getblockcount"))


def test_it_shows_an_open_deposit_s_confirmations_rise(page, live_server, operator, two_nodes):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC", crediting_threshold=2, polling_threshold=4), ours)
    address = services.new_receiving_address(wallet, "alice")
    txid = pay_from_outside(ours, outside, address.address, "0.75")
    update_confirmations(wallet.currency)  # what the scheduler does every minute
    login(page, live_server, "operator", "pw-operator")
    page.goto(f"{live_server.url}/admin/ledger/networktransaction/?state__exact=open")
    row = page.locator("#result_list tbody tr", has_text=txid[:10])  # the list shows ten
    cell = row.locator(".field-confirmations_of")
    assert cell.inner_text().splitlines()[0] == "0 / 4"  # then when the tip was read
    _mine(ours, outside, 2)
    update_confirmations(wallet.currency)
    page.reload()
    assert cell.inner_text().splitlines()[0] == "2 / 4"
    screenshot(page, "open-network-transactions.png")


def test_it_settles_an_interrupted_broadcast_found_on_chain(page, live_server, operator, two_nodes):
    ours, outside = two_nodes
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "3", mine=1)
    wallet = make_wallet(make_currency("BTC"), ours, name="hot wallet")
    alice = services.user_account("alice", wallet.currency)
    imports.import_unaccounted_balance(wallet.pk, alice.pk)
    send_external(alice, outside.rpc("getnewaddress"), 40_000_000)
    # The broadcaster dies after sendmany reached the node and before it recorded the txid.
    broadcast = Broadcaster(wallet).collect()
    Broadcast.objects.filter(pk=broadcast.pk).update(state="opened", opened_at=timezone.now())
    txid = wallet.get_backend().send_many(broadcast.outputs, broadcast.label)

    login(page, live_server, "operator", "pw-operator")
    banner = page.locator(".ca-alert-error", has_text="interrupted broadcast")
    assert banner.count() == 1
    screenshot(page, "dashboard-interrupted.png")
    banner.locator("a").click()
    page.click(f"text={broadcast.label}") if page.locator(
        f"text={broadcast.label}"
    ).count() else page.locator("#result_list tbody tr th a").first.click()
    page.click("a.close-by-hand")
    page.click("input[name=find]")
    assert page.input_value("#id_txid") == txid
    page.check("input[value=reached_network]")
    page.fill("#id_reason", "sendmany reached the node: found by comment, outputs checked")
    screenshot(page, "broadcast-close.png")
    page.click("input[value='Close by hand']")
    assert re.search(r"closed by hand", page.inner_text(".messagelist"))
    assert page.locator(".ca-alert-error", has_text="interrupted broadcast").count() == 0
    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.txid, broadcast.closed_by) == (
        "closed_broadcasted",
        txid,
        operator,
    )


def test_it_shows_a_viewer_the_lists_and_no_money_buttons(page, live_server, viewer, two_nodes):
    ours, outside = two_nodes
    wallet = make_wallet(make_currency("BTC"), ours)
    address = services.new_receiving_address(wallet, "bob")
    pay_from_outside(ours, outside, address.address, "0.2")
    update_confirmations(wallet.currency)
    login(page, live_server, "viewer", "pw-viewer")
    for path in (
        "ledger/networktransaction",
        "broadcasts/broadcast",
        "broadcasts/outgoingtransaction",
        "ledger/wallet",
        "ledger/transaction",
    ):
        page.goto(f"{live_server.url}/admin/{path}/")
        assert page.locator("#changelist").count() == 1, path
        assert page.locator("select[name=action]").count() == 0, path  # no actions at all
    page.goto(f"{live_server.url}/admin/ledger/wallet/")
    assert page.locator("text=Import wallet balance").count() == 0
    page.goto(f"{live_server.url}/admin/broadcasts/outgoingtransaction/")
    assert page.locator("text=Queue outgoing transaction").count() == 0
    response = page.goto(f"{live_server.url}/admin/ledger/wallet/import/")
    assert response.status == 403
