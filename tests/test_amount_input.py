"""Amounts typed into the admin are parsed exactly or refused as a form error, never a 500."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

URL = reverse("admin:broadcasts_outgoingtransaction_queue")


@pytest.mark.parametrize(
    "amount", ["1e999999", "1.000000000000000000000000000001", "1_000", "9" * 400]
)
def test_it_answers_a_hostile_amount_from_an_admin_with_a_form_error(
    client, admin, db_wallet, amount
):
    from broadcasts.models import OutgoingTransaction

    client.force_login(admin)
    response = client.post(
        URL,
        {
            "user_id": "alice",
            "wallet": db_wallet.pk,
            "address": "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef",
            "amount": amount,
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["amount"]
    assert not OutgoingTransaction.objects.exists()
