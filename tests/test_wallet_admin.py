"""The wallet's admin page: what an operator can and cannot do to a wallet."""

import pytest

from tests.support import offline_wallet

pytestmark = pytest.mark.django_db


def test_it_offers_no_delete_on_a_wallets_page(client, superuser, btc):
    # Wallets are never deleted (their accounts and ledger rows protect them): where an import
    # lands, no red Delete that would only fail.
    wallet = offline_wallet(btc, "kept")
    client.force_login(superuser)
    page = client.get(f"/admin/ledger/wallet/{wallet.pk}/change/").content.decode()
    assert "deletelink" not in page
    assert client.post(f"/admin/ledger/wallet/{wallet.pk}/delete/").status_code == 403
