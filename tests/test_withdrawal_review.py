"""Approve, reject and cancel go through a review page stating what will move (count, total in
coins, destinations, fee estimate) before the POST that moves it; a withdrawal's page shows its
whole life with its buttons. No account codes where a person reads."""

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from broadcasts.models import OutgoingTransaction
from ledger import services

pytestmark = pytest.mark.django_db
LIST = "/admin/broadcasts/outgoingtransaction/"
CODES = re.compile(r"\b(201|204|900|910|920)\b")


def _withdrawals(wallet, n=2, state="awaiting_approval", user_id="u-rv"):
    accounts = services.user_accounts(user_id, wallet.currency)
    services.post(services.system_account(wallet, 910), accounts[201], 10**8, "import")
    rows = []
    for i in range(n):
        lock = services.post(accounts[201], accounts[204], 1000 * (i + 1), "pending_outgoing")
        rows.append(
            OutgoingTransaction.objects.create(
                wallet=wallet,
                currency=wallet.currency,
                account=accounts[201],
                hold_account=accounts[204],
                address=f"bcrt1qdestination{i}xxxxxxxxxxxxxxxxxx",
                amount=1000 * (i + 1),
                lock_entry=lock,
                state=state,
                approval_reason="over the approval threshold",
            )
        )
    return rows


def _text(response):
    html = response.content.decode()
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


def _act(client, action, rows, **extra):
    return client.post(
        LIST, {"action": action, ACTION_CHECKBOX_NAME: [r.pk for r in rows], **extra}
    )


def test_it_reviews_an_approval_before_it_moves_anything(client, operator, db_wallet):
    rows = _withdrawals(db_wallet)
    client.force_login(operator)
    review = _act(client, "approve_outgoing", rows)
    text = _text(review)
    assert review.status_code == 200 and "2 withdrawals" in text
    assert "0.00003000 BTC" in text  # the total
    assert "bcrt1qdestination0" in text and "bcrt1qdestination1" in text
    assert "fee" in text.lower() and not CODES.search(text)
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {"awaiting_approval"}
    _act(client, "approve_outgoing", rows, confirm="1")
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {"queued"}


def test_it_reviews_a_rejection_with_its_reason_and_names_its_button(client, operator, db_wallet):
    rows = _withdrawals(db_wallet)
    client.force_login(operator)
    review = _act(client, "reject_outgoing", rows)
    text = _text(review)
    headings = re.findall(r"<h1[^>]*>([^<]*)</h1>", review.content.decode())
    assert headings == ["Reject 2 withdrawals"] and "Rejected outgoing" not in text
    assert 'value="Reject and give the money back"' in review.content.decode()
    assert not CODES.search(text)
    refused = _act(client, "reject_outgoing", rows, confirm="1", reason="")
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    _act(client, "reject_outgoing", rows, confirm="1", reason="not our customer")
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {"rejected"}


def test_it_shows_a_withdrawals_life_and_its_buttons(client, operator, db_wallet):
    (out,) = _withdrawals(db_wallet, 1)
    client.force_login(operator)
    page = client.get(f"{LIST}{out.pk}/change/")
    html = page.content.decode()
    assert f"{LIST}{out.pk}/decide/approve/" in html and f"{LIST}{out.pk}/decide/reject/" in html
    assert f"{LIST}{out.pk}/decide/cancel/" in html
    assert f"/admin/ledger/transaction/{out.lock_entry_id}/change/" in html
    assert "over the approval threshold" in html and "/admin/person/u-rv/" in html
    assert not CODES.search(_text(page))
    review = client.get(f"{LIST}{out.pk}/decide/cancel/")
    assert review.status_code == 200 and "0.00001000 BTC" in _text(review)
    out.refresh_from_db()
    assert out.state == "awaiting_approval"  # a GET moves nothing
    done = client.post(f"{LIST}{out.pk}/decide/cancel/", {"confirm": "1", "reason": "asked to"})
    assert done.status_code == 302 and done["Location"] == f"{LIST}{out.pk}/change/"
    out.refresh_from_db()
    assert out.state == "cancelled" and out.return_entry_id
    page = client.get(f"{LIST}{out.pk}/change/").content.decode()
    assert "asked to" in page and f"/admin/ledger/transaction/{out.return_entry_id}/" in page
    assert f"{LIST}{out.pk}/decide/" not in page  # nothing left to decide
