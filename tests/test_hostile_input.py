"""Whatever a signed-in person types into a list's search, filters or export, the answer is a
page or a clear refusal, never a 500."""

import pytest

from tests.support import make_currency

pytestmark = pytest.mark.django_db

SEARCH = ["q=%C2%B2", "q=treasury+%C2%B2", "q=%00", "q=99999999999999999999999"]
# A superscript two, an Arabic-Indic three: str.isdigit() says yes, int() says no.
NUMBERS = ["%C2%B2", "%D9%A3", "%00", "99999999999999999999999"]
FILTERS = [f"{name}={value}" for name in ("account", "user") for value in NUMBERS]
LISTS = {
    "/admin/ledger/transaction/": SEARCH + FILTERS,
    "/admin/ledger/transaction/export.csv": SEARCH + FILTERS,
    "/admin/ledger/networktransaction/export.csv": SEARCH + FILTERS,
    "/admin/ledger/networktransaction/": SEARCH,
    "/admin/ledger/account/": SEARCH,
    "/admin/ledger/address/": SEARCH,
    "/admin/broadcasts/broadcast/": SEARCH,
    "/admin/broadcasts/outgoingtransaction/": SEARCH + ["o=%C2%B2", "p=%C2%B2"],
}


@pytest.mark.parametrize("url", LISTS)
def test_it_never_answers_500_to_hostile_list_input(client, viewer, url):
    make_currency("BTC")
    client.force_login(viewer)
    for query in LISTS[url]:
        response = client.get(f"{url}?{query}")
        assert response.status_code < 500, (url, query)
        if url.endswith(".csv") and response.status_code == 400:
            assert response.content.startswith(b"bad_filter:")


@pytest.mark.parametrize(
    "wallet, account", [("%C2%B2", "treasury"), ("1", "treasury \u00b2"), ("\u00b2", "\u00b2")]
)
def test_it_never_answers_500_to_a_hostile_import_form(client, admin, wallet, account):
    make_currency("BTC")
    client.force_login(admin)
    response = client.post(
        "/admin/ledger/wallet/import/", {"wallet": wallet, "account": account, "amount": "1"}
    )
    assert response.status_code < 500
