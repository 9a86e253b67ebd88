"""The operator's tour at 1440 px, in a real browser against the real server and nodes: every
page fits the window (no sideways scroll) and shows amounts in coins, never a raw base-unit
integer. Saves the README's screenshots.

Raw amounts are detected by value: the fixture's amounts are known in base units, and none may
appear on a page as a number of its own (the digits inside "0.75000000 BTC" do not count),
while their coin rendering must where the page shows them."""

import re

import pytest

from balances.models import ApiToken
from broadcasts.broadcaster import Broadcaster
from broadcasts.models import Broadcast
from broadcasts.withdrawals import send_external
from ledger import actors, imports, services
from ledger.confirmations.entry_points import update_confirmations
from ledger.reconcile import record_reconciliation
from tests.browser import login, screenshot
from tests.support import make_currency, make_wallet, pay_from_outside, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1440


def _mine(ours, outside, n):
    outside.generate(n)
    wait_until(lambda: ours.rpc("getblockcount") == outside.rpc("getblockcount"))


def _raw_units(text, units):
    return [u for u in units if re.search(rf"(?<![\d.,]){u}(?!\d)", text)]


def _check(page, name, units, coins=(), width=WIDTH, shots=None):
    """The screenshot (into `shots`, a temporary folder, when given), then the two assertions
    of the tour."""
    if shots is None:
        screenshot(page, f"{name}.png")
    else:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert page.viewport_size["width"] == width
    sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert sizes[0] <= sizes[1], f"{name}: {sizes[0]} px of page in a {sizes[1]} px window"
    # The admin puts a list's table in a box of its own that scrolls sideways: nothing
    # hidden there either.
    hidden = page.evaluate(
        "[...document.querySelectorAll('#changelist .results, #content-main')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.scrollWidth - e.clientWidth)"
    )
    assert not hidden, f"{name}: {hidden} px of a list need a sideways scroll"
    text = page.inner_text("body")
    assert not _raw_units(text, units), f"{name}: raw base units {_raw_units(text, units)}"
    for coin in coins:
        assert coin in text, f"{name}: {coin} not shown"


@pytest.fixture
def tour_page(browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


# Account codes where a person reads (names are what people read: "withdraw locked").
NO_ID_CELLS = """() => {
    const body = document.body.cloneNode(true);
    body.querySelectorAll(".field-id, script, style, svg").forEach(cell => cell.remove());
    return body.textContent;
}"""
ACCOUNT_CODES = re.compile(r"\b(201|202|203|204|205|206|230|900|910|920)\b")


def _operator_pages(page, url, units, wallet, broadcast, shots):
    """The operator's day pages at 1440 x 900 and 1280 x 800: no sideways scroll, no raw base
    units, no account codes, no traceback; the approval's review shown before its POST."""
    from broadcasts.models import OutgoingTransaction
    from ledger.models import NetworkTransaction

    waiting = OutgoingTransaction.objects.get(state="queued")
    OutgoingTransaction.objects.filter(pk=waiting.pk).update(
        state="awaiting_approval", approval_reason="over the approval threshold"
    )
    sent = OutgoingTransaction.objects.get(state="broadcasted")
    deposit = NetworkTransaction.objects.filter(type="deposit", credited_at__isnull=False)[0]
    pages = [
        ("home", ""),
        ("network-transactions", "ledger/networktransaction/"),
        ("deposit", f"ledger/networktransaction/{deposit.pk}/change/"),
        ("deposit-history", f"ledger/networktransaction/{deposit.pk}/history/"),
        ("person", "person/treasury/"),
        ("activity", "activity/"),
        ("schedules", "django_q/schedule/"),
        ("tasks", "django_q/success/"),
        ("withdrawal", f"broadcasts/outgoingtransaction/{sent.pk}/change/"),
        ("withdrawal-awaiting", f"broadcasts/outgoingtransaction/{waiting.pk}/change/"),
        ("review-cancel", f"broadcasts/outgoingtransaction/{waiting.pk}/decide/cancel/"),
        ("queue", "broadcasts/outgoingtransaction/queue/?user_id=treasury"),
        ("wallet-add", "ledger/wallet/add/"),
        ("wallet", f"ledger/wallet/{wallet.pk}/change/"),
        ("accounts", "ledger/account/"),
        ("user-balances", "balances/apitoken/user-balances/?user_id=treasury"),
        ("broadcast", f"broadcasts/broadcast/{broadcast.pk}/change/"),
        ("broadcasts", "broadcasts/broadcast/"),
        ("outgoing", "broadcasts/outgoingtransaction/"),
        ("wallets", "ledger/wallet/"),
        ("reconcile", f"ledger/wallet/{wallet.pk}/reconcile/"),
    ]
    for width, height in ((1440, 900), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        for name, path in pages:
            page.goto(url + path)
            _check(page, f"{name}-{width}", units, width=width, shots=shots)
            text = page.inner_text("body")
            # Row ids are numbers too (an account's id may well be 910): not where codes hide.
            shown = page.evaluate(NO_ID_CELLS)
            assert not ACCOUNT_CODES.search(shown), f"{name}: {ACCOUNT_CODES.search(shown)}"
            assert "Traceback" not in text and "Server Error" not in text, name
        page.goto(url + "broadcasts/outgoingtransaction/?state__exact=awaiting_approval")
        page.check(f"input[name=_selected_action][value='{waiting.pk}']")
        page.select_option("select[name=action]", "approve_outgoing")
        page.click("button[name=index]")
        page.wait_for_selector("#review-summary")
        _check(page, f"review-approve-{width}", units, ["0.02345678 BTC"], width, shots)
        assert OutgoingTransaction.objects.get(pk=waiting.pk).state == "awaiting_approval"
        # Close by hand: its review (what closes, what moves) before the POST.
        page.goto(url + "ledger/networktransaction/?state__exact=open&type__exact=deposit")
        page.check("#action-toggle")
        page.select_option("select[name=action]", "close_by_hand")
        page.click("button[name=index]")
        page.wait_for_selector("#close-summary")
        _check(page, f"review-close-{width}", units, width=width, shots=shots)
        assert not NetworkTransaction.objects.filter(state="closed_by_hand").exists()
    page.set_viewport_size({"width": WIDTH, "height": 900})


def test_it_tours_every_page_at_1440_px_in_coins(
    tour_page, live_server, superuser, two_nodes, settings, tmp_path
):
    page = tour_page
    ours, outside = two_nodes
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "3", mine=1)
    currency = make_currency("BTC", crediting_threshold=2, polling_threshold=4)
    wallet = make_wallet(currency, ours, name="hot wallet")
    treasury = services.user_account("treasury", currency)
    imports.import_unaccounted_balance(wallet.pk, treasury.pk)  # 3 BTC
    # bob's deposit is credited; alice's arrives and waits for confirmations.
    bob = services.new_receiving_address(wallet, "bob")
    pay_from_outside(ours, outside, bob.address, "0.2", mine=1)
    alice = services.new_receiving_address(wallet, "alice")
    pay_from_outside(ours, outside, alice.address, "0.75", mine=1)
    update_confirmations(currency)  # bob's at 2 confirmations credited, alice's at 1 waits
    # One withdrawal broadcast, one still queued.
    send_external(treasury, outside.rpc("getnewaddress"), 1_234_567)
    Broadcaster(wallet).run()
    broadcast = Broadcast.objects.get()
    send_external(treasury, outside.rpc("getnewaddress"), 2_345_678)
    record_reconciliation(wallet, by=actors.SYSTEM)
    ApiToken.issue("wallets app", created_by=superuser)

    units = [300_000_000, 20_000_000, 75_000_000, 1_234_567, 2_345_678, broadcast.total]
    units += [broadcast.fee] if broadcast.fee and broadcast.fee >= 1000 else []
    url = live_server.url + "/admin/"
    login(page, live_server, "root", "pw-root")
    _check(page, "home", units, ["0.75000000 BTC"])  # awaiting credit

    page.goto(url + "ledger/networktransaction/")
    _check(page, "network-transactions", units, ["0.75000000 BTC", "0.20000000 BTC"])
    page.goto(url + "broadcasts/broadcast/")
    _check(page, "broadcasts", units, [currency.amount(broadcast.total)])
    page.goto(url + f"broadcasts/broadcast/{broadcast.pk}/change/")
    _check(page, "broadcast", units, [currency.amount(broadcast.total), "0.01234567 BTC"])
    page.goto(url + "broadcasts/outgoingtransaction/")
    _check(page, "outgoing", units, ["0.01234567 BTC", "0.02345678 BTC"])
    page.goto(url + "ledger/wallet/")
    _check(page, "wallets", units)
    page.goto(url + f"ledger/wallet/{wallet.pk}/reconcile/")
    _check(page, "reconcile", units, ["0.75000000 BTC"])

    page.goto(url + f"ledger/wallet/import/?wallet={wallet.pk}")
    page.click(".select2-selection")  # the account picker: typed by user id
    page.fill(".select2-search__field", "treasury")
    page.click(".select2-results__option:has-text('treasury')")
    page.click("input[name=preview]")
    page.wait_for_selector("#import-preview")
    _check(page, "import", units, ["0.75000000 BTC"])

    page.goto(url + "balances/apitoken/user-balances/?user_id=treasury")
    _check(page, "user-balances", units)
    page.goto(url + "balances/apitoken/")
    _check(page, "api-tokens", units)

    _operator_pages(page, url, units, wallet, broadcast, tmp_path)

    page.context.clear_cookies()
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "wrong")
        page.click("input[type=submit]")
    assert "Too many failed sign-ins" in page.inner_text("#content-main")
    # Styled as the admin: its stylesheet's header colour, not a bare text page.
    header = page.evaluate("getComputedStyle(document.querySelector('#header')).backgroundColor")
    assert header not in ("rgba(0, 0, 0, 0)", "transparent")
    _check(page, "lockout", units)
