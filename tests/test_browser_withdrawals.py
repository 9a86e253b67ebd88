"""Four eyes in a real browser (issue 15): an operator queues a large withdrawal, a second
operator approves it and it is broadcast; a third is rejected and the user's 201 restored."""

import pytest

from broadcasts.broadcaster import Broadcaster
from broadcasts.models import OutgoingTransaction, WithdrawalRule
from ledger import services as ledger
from tests.browser import login, screenshot
from tests.support import funded_wallet, grant, make_currency

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Q = OutgoingTransaction.State


def _select(page, address, action):
    page.goto(
        page.url.split("/admin/")[0]
        + "/admin/broadcasts/outgoingtransaction/?state=awaiting_approval"
    )
    page.locator("#result_list tbody tr", has_text=address).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    with page.expect_navigation():
        page.click("button[name=index]")


def _confirm(page):
    """The review page states what will move; only its button moves it."""
    with page.expect_navigation():
        page.click("input[type=submit].money-action")


def test_it_needs_a_second_operator_to_approve_and_returns_a_rejected_one(
    page, live_server, node, fresh_node, django_user_model
):
    currency = make_currency("BTC")
    wallet, alice = funded_wallet(currency, fresh_node())
    WithdrawalRule.objects.create(currency=currency, approval_above=50_000_000)
    first = django_user_model.objects.create_user("first", password="pw-first", is_staff=True)
    second = django_user_model.objects.create_user("second", password="pw-second", is_staff=True)
    grant(
        first,
        "broadcasts.view_outgoingtransaction",
        "broadcasts.queue_outgoingtransaction",
        "broadcasts.approve_outgoingtransaction",
    )
    grant(
        second,
        "broadcasts.view_outgoingtransaction",
        "broadcasts.approve_outgoingtransaction",
        "broadcasts.cancel_outgoingtransaction",
    )
    large, other = node.rpc("getnewaddress"), node.rpc("getnewaddress")
    before = ledger.balance(alice)

    login(page, live_server, "first", "pw-first")
    for address in (large, other):
        page.goto(f"{live_server.url}/admin/broadcasts/outgoingtransaction/queue/")
        page.fill("#id_user_id", "alice")
        page.select_option("#id_wallet", str(wallet.pk))
        page.fill("#id_address", address)
        page.fill("#id_amount", "0.6")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/broadcasts/outgoingtransaction/")
        # The message says what happens next: a second person, named, must approve it.
        page.locator(
            ".messagelist", has_text="Awaiting approval: 0.60000000 BTC"
        ).wait_for()  # raises if it never shows
        assert "(not you): second" in page.locator(".messagelist").inner_text()
    assert page.locator("#result_list tbody tr", has_text="awaiting approval").count() == 2
    # The one who queued it cannot approve it.
    _select(page, large, "approve_outgoing")
    _confirm(page)
    page.locator(
        ".messagelist", has_text="queued by you: another person must approve it"
    ).wait_for()  # raises if it never shows
    assert OutgoingTransaction.objects.get(address=large).state == Q.AWAITING_APPROVAL

    page.context.clear_cookies()
    login(page, live_server, "second", "pw-second")
    _select(page, large, "approve_outgoing")
    _confirm(page)
    page.locator(
        ".messagelist", has_text="1 withdrawal approved"
    ).wait_for()  # raises if it never shows
    _select(page, other, "reject_outgoing")
    page.fill("#id_reason", "user did not confirm by phone")
    screenshot(page, "reject-outgoing.png")
    _confirm(page)
    page.wait_for_url("**/admin/broadcasts/outgoingtransaction/**")
    page.locator(
        ".messagelist", has_text="1 withdrawal rejected"
    ).wait_for()  # raises if it never shows

    Broadcaster(wallet).run()  # what the scheduler does every minute
    sent, rejected = (
        OutgoingTransaction.objects.get(address=large),
        OutgoingTransaction.objects.get(address=other),
    )
    assert (sent.state, sent.approved_by, rejected.state, rejected.closed_by) == (
        Q.BROADCASTED,
        second,
        Q.REJECTED,
        second,
    )
    assert wallet.get_backend().get_transaction(sent.broadcast.txid).sent() == {large: 60_000_000}
    assert ledger.balance(alice) == before - 60_000_000  # the rejected one's 201 is restored
    page.goto(f"{live_server.url}/admin/broadcasts/outgoingtransaction/")
    screenshot(page, "outgoing-approved-and-rejected.png")
