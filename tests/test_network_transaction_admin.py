"""The network transactions list: columns, filters, search, Check now, Close by hand."""

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger import services
from ledger.models import NetworkTransaction
from tests.support import grant

pytestmark = pytest.mark.django_db
LIST = "/admin/ledger/networktransaction/"


def _rows(wallet, n, **kwargs):
    return NetworkTransaction.objects.bulk_create(
        [
            NetworkTransaction(
                currency=wallet.currency, wallet=wallet, txid=f"{i:064x}", type="deposit", **kwargs
            )
            for i in range(n)
        ]
    )


@pytest.fixture
def staff_client(client, staff):
    grant(staff, "ledger.view_networktransaction")
    client.force_login(staff)
    return client


def test_it_lists_with_a_bounded_number_of_queries(staff_client, db_wallet):
    wallet = db_wallet
    _rows(wallet, 5)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(LIST).status_code == 200
    NetworkTransaction.objects.all().delete()
    _rows(wallet, 100)
    with CaptureQueriesContext(connection) as many:
        response = staff_client.get(LIST)
    assert len(many) == len(few)
    assert "0 / 4" in response.content.decode()  # confirmations of the threshold


def test_it_filters_the_stuck_ones(staff_client, db_wallet):
    wallet = db_wallet
    old, new = _rows(wallet, 2)
    NetworkTransaction.objects.filter(pk=old.pk).update(
        opened_at=timezone.now() - timezone.timedelta(hours=2)
    )
    response = staff_client.get(LIST + "?stuck=1h")
    assert [r.pk for r in response.context["cl"].result_list] == [old.pk]


def test_it_searches_by_txid_and_by_address(staff_client, wallet):
    first, second = _rows(wallet, 2)
    address = services.new_receiving_address(wallet, "alice")
    services.post(
        services.system_account(wallet, 900),
        address.account,
        5,
        "deposit",
        network_transaction=second,
        address=address,
    )
    assert [r.pk for r in staff_client.get(LIST, {"q": first.txid}).context["cl"].result_list] == [
        first.pk
    ]
    assert [
        r.pk for r in staff_client.get(LIST, {"q": address.address}).context["cl"].result_list
    ] == [second.pk]


def test_it_closes_by_hand_with_a_reason_and_history(client, operator, db_wallet):
    wallet = db_wallet
    grant(operator, "ledger.view_networktransaction", "ledger.close_networktransaction_by_hand")
    client.force_login(operator)
    (row,) = _rows(wallet, 1)
    assert b"Close by hand" in client.get(f"{LIST}{row.pk}/change/").content
    refused = client.post(f"{LIST}{row.pk}/close/", {"reason": "  "})
    assert refused.status_code == 200 and "This field is required." in refused.content.decode()
    response = client.post(
        f"{LIST}{row.pk}/close/", {"reason": "checked on the explorer: double spent"}
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.state, row.closed_by, row.close_reason) == (
        "closed_by_hand",
        operator,
        "checked on the explorer: double spent",
    )
    assert row.closed_at is not None
    assert (
        "Closed by hand: checked on the explorer"
        in LogEntry.objects.get(object_id=str(row.pk)).get_change_message()
    )


def test_it_closes_several_through_the_action(client, operator, db_wallet):
    wallet = db_wallet
    grant(operator, "ledger.view_networktransaction", "ledger.close_networktransaction_by_hand")
    client.force_login(operator)
    rows = _rows(wallet, 3)
    ids = [r.pk for r in rows[:2]]
    form = client.post(LIST, {"action": "close_by_hand", "_selected_action": ids})
    assert b"Close network transactions by hand" in form.content
    client.post(LIST, {"action": "close_by_hand", "_selected_action": ids, "reason": "test coins"})
    assert (
        sorted(
            NetworkTransaction.objects.filter(state="closed_by_hand").values_list("pk", flat=True)
        )
        == ids
    )


def test_it_forbids_closing_without_the_permission(staff_client, db_wallet):
    wallet = db_wallet
    (row,) = _rows(wallet, 1)
    page = staff_client.get(LIST).content.decode()
    assert "close_by_hand" not in page and "check_now" not in page
    assert b"Close by hand" not in staff_client.get(f"{LIST}{row.pk}/change/").content
    assert staff_client.get(f"{LIST}{row.pk}/close/").status_code == 403
    assert staff_client.post(f"{LIST}{row.pk}/close/", {"reason": "x"}).status_code == 403
    staff_client.post(
        LIST, {"action": "close_by_hand", "_selected_action": [row.pk], "reason": "x"}
    )
    row.refresh_from_db()
    assert row.state == "open"


def test_it_checks_now_against_the_node(client, operator, wallet, node):
    grant(operator, "ledger.view_networktransaction", "ledger.check_networktransaction")
    client.force_login(operator)
    txid = node.rpc("sendtoaddress", node.rpc("getnewaddress"), "0.1")
    node.generate(1)
    row = NetworkTransaction.objects.create(
        currency=wallet.currency, wallet=wallet, txid=txid, type="broadcast"
    )
    response = client.post(LIST, {"action": "check_now", "_selected_action": [row.pk]}, follow=True)
    assert "Checked: 1 transaction checked" in response.content.decode()
    row.refresh_from_db()
    assert row.confirmations == 1 and row.last_checked_at is not None


def test_it_checks_and_closes_through_services_that_check_the_permission(operator, viewer, wallet):
    from django.core.exceptions import PermissionDenied

    from ledger import operator as flows
    from ledger.actors import SYSTEM

    (row,) = _rows(wallet, 1)
    with pytest.raises(PermissionDenied):
        flows.check_now([row], by=viewer)
    with pytest.raises(PermissionDenied):
        flows.close_transactions_by_hand([row.pk], by=viewer, reason="not mine")
    row.refresh_from_db()
    assert row.state == "open" and not LogEntry.objects.exists()
    grant(operator, "ledger.close_networktransaction_by_hand")
    (closed,) = flows.close_transactions_by_hand(
        [row.pk], by=operator, reason="checked on the explorer"
    )
    assert (closed.state, closed.closed_by) == ("closed_by_hand", operator)
    assert LogEntry.objects.get(object_id=str(row.pk)).user == operator
    assert flows.check_now([row], by=SYSTEM) is not None  # the system may; nothing polled is left


def _credited_deposit(wallet, user_id="u-dep", address="bcrt1qpaidaddressofthedepositor0000"):
    from ledger.models import Account, Address

    now = timezone.now()
    (row,) = _rows(wallet, 1, state="closed", credited_at=now, amount=150_000_000, block_height=100)
    account = services.user_account(user_id, wallet.currency)
    paid = Address.objects.create(
        currency=wallet.currency, wallet=wallet, account=account, address=address, kind="receiving"
    )
    network = services.system_account(wallet, Account.Code.NETWORK)
    entry = services.post(
        network, account, 150_000_000, "deposit", network_transaction=row, address=paid
    )
    return row, entry


def test_it_says_whom_a_deposit_paid_in_the_list_its_page_and_the_csv(staff_client, db_wallet):
    row, entry = _credited_deposit(db_wallet)
    entry_url = f"/admin/ledger/transaction/{entry.pk}/change/"
    listed = staff_client.get(LIST).content.decode()
    assert "u-dep" in listed and entry_url in listed and "bcrt1qpaid" in listed
    page = staff_client.get(f"{LIST}{row.pk}/change/").content.decode()
    assert "u-dep" in page and entry_url in page and "bcrt1qpaidaddressofthedepositor0000" in page
    csv = b"".join(staff_client.get(LIST + "export.csv").streaming_content).decode()
    header, line = csv.splitlines()[:2]
    assert "user" in header and "address" in header and "ledger entries" in header
    assert (
        "u-dep" in line and "bcrt1qpaidaddressofthedepositor0000" in line and str(entry.pk) in line
    )


def test_it_tells_a_deposits_history(staff_client, db_wallet):
    row, entry = _credited_deposit(db_wallet)
    page = staff_client.get(f"{LIST}{row.pk}/history/").content.decode()
    assert (
        "doesn’t have a change history" not in page and "doesn't have a change history" not in page
    )
    assert "Credited" in page and "u-dep" in page and "1.50000000 BTC" in page


def test_it_derives_a_closed_rows_confirmations_from_the_tip_and_says_when_checked(
    staff_client, db_wallet
):
    row, _ = _credited_deposit(db_wallet)
    NetworkTransaction.objects.filter(pk=row.pk).update(confirmations=17)
    type(db_wallet).objects.filter(pk=db_wallet.pk).update(
        last_block_height=130, last_polled_at=timezone.now() - timezone.timedelta(seconds=20)
    )
    listed = staff_client.get(LIST).content.decode()
    assert "17 / " not in listed and ">31<" in listed
    assert "checked 20 s ago" in listed


def test_it_reviews_a_close_by_hand_with_count_total_and_what_moves(client, operator, db_wallet):
    grant(operator, "ledger.view_networktransaction", "ledger.close_networktransaction_by_hand")
    rows = _rows(db_wallet, 2, amount=150_000_000)
    client.force_login(operator)
    page = client.post(
        LIST, {"action": "close_by_hand", "_selected_action": [r.pk for r in rows]}
    ).content.decode()
    assert "2 network transactions" in page and "3.00000000 BTC" in page
    assert "nobody is credited" in page
    assert set(NetworkTransaction.objects.values_list("state", flat=True)) == {"open"}


def test_it_says_whom_a_deposit_pays_before_it_is_credited(staff_client, db_wallet):
    from ledger.backends.base import TxInfo, TxOutput
    from ledger.confirmations.crediting import record_deposits
    from ledger.models import Address

    account = services.user_account("u-wait", db_wallet.currency)
    Address.objects.create(
        currency=db_wallet.currency,
        wallet=db_wallet,
        account=account,
        address="bcrt1qwaitingforconfirmations000000",
        kind="receiving",
    )
    paying = TxOutput(
        address="bcrt1qwaitingforconfirmations000000", amount=70_000_000, category="receive"
    )
    assert record_deposits(db_wallet, [TxInfo("ef" * 32, 1, None, (paying,))]) == 1
    listed = staff_client.get(LIST).content.decode()
    assert "u-wait" in listed and "bcrt1qwaiti" in listed and "awaiting credit" in listed
    csv = b"".join(staff_client.get(LIST + "export.csv").streaming_content).decode()
    assert "u-wait" in csv and "bcrt1qwaitingforconfirmations000000" in csv
