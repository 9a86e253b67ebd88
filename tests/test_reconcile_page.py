"""The reconciliation page: reading shows the last recorded reconciliation; recording one
(a node call and a write) is a POST with `ledger.reconcile_wallet`."""

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from tests.support import offline_wallet

pytestmark = pytest.mark.django_db


def _url(wallet):
    return f"/admin/ledger/wallet/{wallet.pk}/reconcile/"


def test_it_writes_nothing_on_a_viewers_get(client, viewer, db_wallet):
    wallet = db_wallet
    client.force_login(viewer)
    response = client.get(_url(wallet))
    assert response.status_code == 200
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is None and wallet.last_reconciliation in (None, {})
    assert b"Never reconciled" in response.content


def test_it_shows_the_recorded_figures_without_calling_the_node(client, viewer, btc):
    # The node is down: a GET that called it would show the error instead of the figures.
    checked = timezone.now()
    wallet = offline_wallet(
        btc,
        "recorded",
        last_reconciled_at=checked,
        last_reconciliation={
            "wallet_id": 0,
            "node_balance": 700000000,
            "books_balance": 0,
            "uncredited": 200000000,
            "users_balance": 0,
            "pending_outgoing": 0,
            "fees": 0,
            "unaccounted": 500000000,
            "checked_at": checked.isoformat(),
            "missing_deposits": [
                {"address": "addr1", "txids": ["ab" * 32], "received": 1, "credited": 0}
            ],
        },
    )
    client.force_login(viewer)
    page = client.get(_url(wallet)).content.decode()
    assert "could not be asked" not in page
    assert "5.00000000 BTC" in page and "7.00000000" in page and "ab" * 32 in page
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at == checked
    assert 'name="reconcile"' not in page  # no button for a Viewer


def test_it_refuses_a_viewers_post_and_records_nothing(client, viewer, db_wallet):
    wallet = db_wallet
    client.force_login(viewer)
    assert client.post(_url(wallet), {"reconcile": "1"}).status_code == 403
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is None


def test_it_records_a_reconciliation_on_an_operators_post(client, operator, wallet):
    client.force_login(operator)
    assert 'name="reconcile"' in client.get(_url(wallet)).content.decode()
    response = client.post(_url(wallet), {"reconcile": "1"})
    assert response.status_code == 302 and response["Location"] == _url(wallet)
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is not None and "unaccounted" in wallet.last_reconciliation
    assert LogEntry.objects.filter(object_id=str(wallet.pk), user=operator).exists()
    page = client.get(_url(wallet)).content.decode()
    assert 'id="difference"' in page


def test_it_reads_without_recording_and_records_only_with_the_permission(viewer, operator, wallet):
    from django.core.exceptions import PermissionDenied

    from ledger.reconcile import reconcile, record_reconciliation

    assert reconcile(wallet).wallet_id == wallet.pk
    with pytest.raises(PermissionDenied):
        record_reconciliation(wallet, by=viewer)
    wallet.refresh_from_db()
    assert wallet.last_reconciled_at is None
    recorded = record_reconciliation(wallet, by=operator)
    wallet.refresh_from_db()
    assert wallet.last_reconciliation["unaccounted"] == recorded.unaccounted
