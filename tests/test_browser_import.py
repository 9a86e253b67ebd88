"""An admin imports a wallet's balance through the form, in a real browser."""

import pytest

from ledger import services
from ledger.models import Transaction
from tests.browser import login, screenshot
from tests.support import grant, make_currency, make_wallet, pay_from_outside

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_previews_confirms_and_shows_the_result(page, live_server, operator, two_nodes):
    ours, outside = two_nodes
    pay_from_outside(ours, outside, ours.rpc("getnewaddress"), "5", mine=1)
    wallet = make_wallet(make_currency("BTC"), ours, name="hot wallet")
    target = services.user_account("treasury", wallet.currency)
    grant(operator, "ledger.import_wallet_balance", "ledger.view_wallet", "ledger.view_account")

    login(page, live_server, "operator", "pw-operator")
    page.goto(f"{live_server.url}/admin/ledger/wallet/")
    page.click("text=Import wallet balance")
    page.select_option("#id_wallet", str(wallet.pk))
    page.click(".select2-selection")  # the account picker, searched by user id
    page.fill(".select2-search__field", "treasury")
    page.click(".select2-results__option:has-text('treasury')")
    assert page.input_value("#id_account") == str(target.pk)
    page.click("input[name=preview]")
    assert page.inner_text("#unaccounted") == "5.00000000 BTC"
    assert not Transaction.objects.filter(kind="import").exists()
    screenshot(page, "import-preview.png")

    page.click("input[name=confirm]")
    page.wait_for_url(f"{live_server.url}/admin/ledger/wallet/{wallet.pk}/change/")
    assert "Import #1 from wallet hot wallet: 5.00000000 BTC" in page.inner_text(".messagelist")
    assert list(Transaction.objects.filter(kind="import").values_list("amount", flat=True)) == [
        5 * 10**8
    ]
    page.click("text=History")
    assert "Imported 5.00000000 BTC" in page.inner_text("#change-history")
