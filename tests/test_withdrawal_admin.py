"""The outgoing transactions admin of issue 15: Approve / Reject / Cancel actions
(permission-gated, a reason asked, bulk), the state filter, and the dashboard's counts."""

import pytest
from django.urls import reverse

from broadcasts.models import OutgoingTransaction, WithdrawalRule
from broadcasts.withdrawals import send_external
from ledger import services as ledger
from ledger.models import Account
from tests.support import credit_user, grant

pytestmark = pytest.mark.django_db

Q = OutgoingTransaction.State
CHANGELIST = "admin:broadcasts_outgoingtransaction_changelist"


@pytest.fixture
def awaiting(wallet, node, operator):
    WithdrawalRule.objects.create(currency=wallet.currency, approval_above=1_000_000)
    alice = credit_user(wallet, "alice", 10**8)
    return [
        send_external(alice, node.rpc("getnewaddress"), 2_000_000 + i, created_by=operator)
        for i in range(2)
    ]


@pytest.fixture
def second(django_user_model):
    user = django_user_model.objects.create_user("second", password="pw", is_staff=True)
    return grant(
        user,
        "broadcasts.view_outgoingtransaction",
        "broadcasts.approve_outgoingtransaction",
        "broadcasts.cancel_outgoingtransaction",
    )


def act(client, action, rows, **extra):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [o.pk for o in rows], **extra},
        follow=True,
    )


def test_it_approves_in_bulk_but_not_what_you_queued(client, awaiting, second, operator):
    mine = send_external(
        ledger.user_account("alice", awaiting[0].currency),
        awaiting[0].address,
        3_000_000,
        created_by=second,
    )
    client.force_login(second)
    # The review page first, then its confirm moves them.
    response = act(client, "approve_outgoing", awaiting + [mine], confirm="1")
    text = " | ".join(str(m) for m in response.context["messages"])
    assert "2 withdrawals approved" in text
    assert f"outgoing #{mine.pk} was queued by you: another person must approve it" in text
    states = dict(OutgoingTransaction.objects.values_list("pk", "state"))
    assert [states[o.pk] for o in awaiting] == [Q.QUEUED, Q.QUEUED] and states[
        mine.pk
    ] == Q.AWAITING_APPROVAL


def test_it_asks_a_reason_to_reject_and_gives_the_money_back(client, awaiting, second, wallet):
    client.force_login(second)
    page = act(client, "reject_outgoing", awaiting)
    assert b"Reject" in page.content and b'name="reason"' in page.content
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {Q.AWAITING_APPROVAL}
    response = act(
        client, "reject_outgoing", awaiting, reason="address on a sanctions list", confirm="1"
    )
    assert "2 withdrawals rejected" in response.content.decode()
    assert set(OutgoingTransaction.objects.values_list("state", "close_reason")) == {
        (Q.REJECTED, "address on a sanctions list")
    }
    assert (
        ledger.balance(ledger.user_account("alice", wallet.currency, Account.Code.BALANCE)) == 10**8
    )


def test_it_shows_no_action_to_a_viewer(client, awaiting, viewer):
    grant(viewer, "broadcasts.view_outgoingtransaction")
    client.force_login(viewer)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert (
        "approve_outgoing" not in page
        and "cancel_outgoing" not in page
        and "reject_outgoing" not in page
    )
    act(client, "cancel_outgoing", awaiting, reason="x")
    assert set(OutgoingTransaction.objects.values_list("state", flat=True)) == {Q.AWAITING_APPROVAL}


def test_it_filters_by_state_and_counts_on_the_dashboard(client, awaiting, second):
    OutgoingTransaction.objects.filter(pk=awaiting[1].pk).update(
        state=Q.NEEDS_ATTENTION, last_error="too small"
    )
    grant(second, "broadcasts.view_broadcast")
    client.force_login(second)
    listed = client.get(reverse(CHANGELIST) + "?state=needs_attention").context["cl"].result_list
    assert [o.pk for o in listed] == [awaiting[1].pk]
    home = client.get(reverse("admin:index")).content.decode()
    assert "Awaiting approval" in home and "?state__exact=awaiting_approval" in home
    assert (
        "?state__exact=needs_attention" in home and "1 outgoing transaction needs attention" in home
    )


def test_it_records_who_changed_a_withdrawal_rule_and_from_what(client, admin_user, btc):
    from auditlog.models import LogEntry

    rule = WithdrawalRule.objects.create(currency=btc, minimum_amount=546, approval_above=10**8)
    client.force_login(admin_user)
    response = client.post(
        f"/admin/broadcasts/withdrawalrule/{rule.pk}/change/",
        {"currency": btc.pk, "minimum_amount": 546, "approval_above": 5 * 10**7, "daily_limit": ""},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = LogEntry.objects.get_for_object(rule).order_by("timestamp").last()
    assert (entry.actor, entry.changes_dict) == (
        admin_user,
        {"approval_above": ["100000000", "50000000"]},
    )


def test_it_says_a_queued_withdrawal_awaits_approval_and_by_whom(
    client, wallet, node, operator, second, viewer
):
    WithdrawalRule.objects.create(currency=wallet.currency, approval_above=1_000_000)
    credit_user(wallet, "frank", 10**8)
    grant(
        operator,
        "broadcasts.view_outgoingtransaction",
        "broadcasts.queue_outgoingtransaction",
        "broadcasts.approve_outgoingtransaction",
    )
    client.force_login(operator)
    url = reverse("admin:broadcasts_outgoingtransaction_queue")
    form = {"user_id": "frank", "wallet": wallet.pk, "label": ""}

    def queue(amount):
        page = client.post(
            url, dict(form, address=node.rpc("getnewaddress"), amount=amount), follow=True
        )
        return " | ".join(str(m) for m in page.context["messages"])

    small = queue("0.01")
    assert small.startswith("Queued 0.01000000 BTC") and "for the next broadcast" in small
    large = queue("0.02")
    assert "Queued" not in large, large
    assert large.startswith("Awaiting approval: 0.02000000 BTC"), large
    assert "amount 0.02000000 BTC is above 0.01000000 BTC" in large
    # Who may approve: a person other than the one who queued it, with the permission.
    assert "another person with the approve permission (not you): second" in large
    assert "viewer" not in large and f"{operator.username}," not in large
