"""One way to show an amount: coins with the currency's decimals and its code, everywhere."""

import pytest
from django.template import Context, Template

from ledger import services
from ledger.money import format_amount
from tests.support import make_currency

pytestmark = pytest.mark.django_db


def test_it_formats_base_units_as_coins_with_the_code(btc):
    assert format_amount(150_000_000, btc) == "1.50000000 BTC"
    assert format_amount(-5200, btc) == "-0.00005200 BTC"
    assert format_amount(None, btc) == "—"
    eth = make_currency("ETH", decimals=10)
    assert eth.amount(12345) == "0.0000012345 ETH"


def test_it_formats_in_templates_through_the_amount_filter(btc):
    rendered = Template("{% load money %}{{ units|amount:currency }}").render(
        Context({"units": 6_870_043, "currency": btc})
    )
    assert rendered == "0.06870043 BTC"


def test_it_names_ledger_rows_and_outgoing_in_coins_for_history_entries(db_wallet, btc):
    from broadcasts.models import OutgoingTransaction
    from tests.support import credit_user

    alice = credit_user(db_wallet, "alice", 2_000_000)
    out = OutgoingTransaction(currency=btc, address="mgMMaddress", amount=1_500_000)
    assert str(out) == "0.01500000 BTC to mgMMaddress"
    entry = services.post(services.system_account(db_wallet, 910), alice, 7, "import")
    assert "0.00000007 BTC" in str(entry) and " 7 " not in str(entry)
