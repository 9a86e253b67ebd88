"""Export CSV: the rows a list's filters and search select, every page, for who can view it."""

import csv
import io

import pytest
from django.utils import timezone

from broadcasts.models import Broadcast, OutgoingTransaction
from broadcasts.withdrawals import send_external
from ledger.models import NetworkTransaction
from tests.support import credit_user, grant

pytestmark = pytest.mark.django_db


def _csv(response):
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_it_exports_the_filtered_network_transactions_beyond_one_page(client, viewer, db_wallet):
    NetworkTransaction.objects.bulk_create(
        [
            NetworkTransaction(
                currency=db_wallet.currency,
                wallet=db_wallet,
                txid=f"{i:064x}",
                type="deposit",
                amount=75_000_000,
                state="open" if i % 2 else "closed_by_hand",
            )
            for i in range(250)  # more than one page of the list (100)
        ]
    )
    grant(viewer, "ledger.view_networktransaction")
    client.force_login(viewer)
    listing = client.get("/admin/ledger/networktransaction/?state__exact=open").content.decode()
    assert 'href="export.csv?state__exact=open"' in listing
    rows = _csv(client.get("/admin/ledger/networktransaction/export.csv?state__exact=open"))
    assert len(rows) == 125 and {r["state"] for r in rows} == {"open"}
    assert rows[0]["amount"] == "0.75000000" and rows[0]["currency"] == "BTC"
    assert rows[0]["wallet"] == db_wallet.name


def test_it_exports_outgoing_broadcasts_and_ledger_transactions(client, superuser, wallet, node):
    alice = credit_user(wallet, "alice", 3_000_000)
    send_external(alice, node.rpc("getnewaddress"), 1_500_000, label="=HYPERLINK(evil)")
    Broadcast.objects.create(
        wallet=wallet,
        state="broadcasted",
        label="b-9",
        txid="9a" * 32,
        fee=5200,
        total=7,
        opened_at=timezone.now(),
        broadcasted_at=timezone.now(),
    )
    client.force_login(superuser)
    outgoing = _csv(client.get("/admin/broadcasts/outgoingtransaction/export.csv"))
    assert [(r["user"], r["amount"], r["state"]) for r in outgoing] == [
        ("alice", "0.01500000", OutgoingTransaction.State.QUEUED)
    ]
    assert outgoing[0]["label"] == "'=HYPERLINK(evil)"  # never a spreadsheet formula
    broadcasts = _csv(client.get("/admin/broadcasts/broadcast/export.csv"))
    assert [(b["label"], b["fee"], b["total"]) for b in broadcasts] == [
        ("b-9", "0.00005200", "0.00000007")
    ]
    entries = _csv(client.get("/admin/ledger/transaction/export.csv?kind__exact=import"))
    assert [(e["kind"], e["amount"]) for e in entries] == [("import", "0.03000000")]


FORMULAS = [
    "-2+3+cmd|' /C calc'!A0",
    '\t=HYPERLINK("http://evil.example")',
    '\r=HYPERLINK("http://evil.example")',
    "+1+1",
    "@SUM(A1)",
    "\uff1d1+1",  # full-width equals sign
    "\uff0b1",
    "\uff0d1",
    "\uff201",
]


def test_it_exports_no_text_a_spreadsheet_would_run(client, viewer, db_wallet):
    NetworkTransaction.objects.bulk_create(
        NetworkTransaction(
            currency=db_wallet.currency,
            wallet=db_wallet,
            txid=f"{i:064x}",
            type="deposit",
            state="open",
            flag_reason=payload,
        )
        for i, payload in enumerate(FORMULAS)
    )
    grant(viewer, "ledger.view_networktransaction")
    client.force_login(viewer)
    rows = _csv(client.get("/admin/ledger/networktransaction/export.csv"))
    assert sorted(r["flag_reason"] for r in rows) == sorted("'" + p for p in FORMULAS)


def test_it_refuses_the_export_to_who_cannot_view_the_list(client, staff, db_wallet):
    client.force_login(staff)  # staff, no permission on network transactions
    assert client.get("/admin/ledger/networktransaction/export.csv").status_code == 403
