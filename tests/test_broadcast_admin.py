"""The broadcasts admin: lists, banner, queue form and the close-by-hand pages."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from broadcasts.broadcaster import Broadcaster
from broadcasts.models import Broadcast, OutgoingTransaction
from broadcasts.withdrawals import send_external
from tests.broadcast_helpers import end_lease
from tests.support import SendOutcomeUnknown, credit_user, grant

pytestmark = pytest.mark.django_db

CLOSE = "broadcasts.close_broadcast_by_hand"


@pytest.fixture
def interrupted(wallet, node):
    """An opened, never closed broadcast of one real outgoing transaction."""
    send_external(credit_user(wallet, "erin", 10**7), node.rpc("getnewaddress"), 1_234_567)
    Broadcaster(wallet, backend=SendOutcomeUnknown(wallet)).run()
    return end_lease(Broadcast.objects.get(state=Broadcast.State.OPENED))


@pytest.fixture
def closer(client, operator):
    grant(operator, "broadcasts.view_broadcast", CLOSE)
    client.force_login(operator)
    return operator


def urls(broadcast):
    return dict(
        change=reverse("admin:broadcasts_broadcast_change", args=[broadcast.pk]),
        close=reverse("admin:broadcasts_broadcast_close", args=[broadcast.pk]),
        find=reverse("admin:broadcasts_broadcast_find", args=[broadcast.pk]),
    )


def test_it_lists_broadcasts_and_filters_the_interrupted_ones(client, viewer, interrupted, wallet):
    done = Broadcast.objects.create(
        wallet=wallet,
        state="broadcasted",
        label="done-1",
        txid="cd" * 32,
        fee=226,
        total=5,
        opened_at=interrupted.opened_at,
    )
    grant(viewer, "broadcasts.view_broadcast")
    client.force_login(viewer)
    changelist = reverse("admin:broadcasts_broadcast_changelist")
    page = client.get(changelist).content.decode()
    assert interrupted.label in page and "cdcdcdcdcdcdcdcd" in page and "0.00000226" in page
    filtered = client.get(changelist + "?interrupted=yes").content.decode()
    assert interrupted.label in filtered and "cdcdcdcdcdcdcdcd" not in filtered
    assert (
        client.get(changelist + "?state__exact=broadcasted").content.decode().count(done.label) == 1
    )


def test_it_shows_a_red_banner_on_admin_pages_while_a_broadcast_is_interrupted(
    client, closer, interrupted
):
    page = client.get(reverse("admin:index")).content.decode()
    assert "ca-alert-error" in page and "1 interrupted broadcast" in page
    assert reverse("admin:broadcasts_broadcast_changelist") + "?interrupted=yes" in page
    client.post(urls(interrupted)["close"], {"method": "never_left", "reason": "checked the node"})
    # The banner is gone (the home page's count of them reads 0).
    home = client.get(reverse("admin:index")).content.decode()
    assert "interrupted broadcast:" not in home and "<strong>0</strong> interrupted" in home


def test_it_hides_close_by_hand_and_answers_403_without_the_permission(
    client, viewer, operator, outsider, interrupted
):
    u = urls(interrupted)
    grant(viewer, "broadcasts.view_broadcast")
    client.force_login(viewer)
    page = client.get(u["change"])
    assert page.status_code == 200 and "Close by hand" not in page.content.decode()
    assert client.get(u["close"]).status_code == 403
    assert client.post(u["close"], {"method": "never_left", "reason": "x"}).status_code == 403
    assert client.post(u["find"]).status_code == 403
    client.force_login(outsider)
    assert (
        client.post(u["close"], {"method": "never_left", "reason": "x"}).status_code == 302
    )  # to the login
    interrupted.refresh_from_db()
    assert interrupted.state == Broadcast.State.OPENED
    grant(operator, "broadcasts.view_broadcast", CLOSE)
    client.force_login(operator)
    assert "Close by hand" in client.get(u["change"]).content.decode()


def test_it_closes_as_reached_the_network_after_checking_the_node(
    client, closer, interrupted, wallet, node
):
    u = urls(interrupted)
    txid = wallet.get_backend().send_many(
        interrupted.outputs, interrupted.label
    )  # what the lost call did
    other = wallet.get_backend().send_many({node.rpc("getnewaddress"): 1_234_567}, "not ours")

    found = client.post(u["find"])
    assert found.status_code == 302 and found["Location"].endswith(f"?txid={txid}")
    assert txid in client.get(found["Location"]).content.decode()
    refused = client.post(
        u["close"], {"method": "reached_network", "txid": other, "reason": "wrong one"}
    )
    assert refused.status_code == 200 and "do not match" in refused.content.decode()
    interrupted.refresh_from_db()
    assert interrupted.state == Broadcast.State.OPENED

    done = client.post(
        u["close"], {"method": "reached_network", "txid": txid, "reason": "found by comment"}
    )

    assert done.status_code == 302
    interrupted.refresh_from_db()
    assert (
        interrupted.state,
        interrupted.txid,
        interrupted.closed_by,
        interrupted.close_reason,
    ) == ("closed_broadcasted", txid, closer, "found by comment")
    assert interrupted.fee and interrupted.closed_at
    entry = LogEntry.objects.get(object_id=str(interrupted.pk))
    assert (
        entry.user == closer
        and txid in entry.get_change_message()
        and "found by comment" in entry.change_message
    )
    assert "Close by hand" not in client.get(u["change"]).content.decode()
    again = client.post(u["close"], {"method": "never_left", "reason": "edit it"}, follow=True)
    assert "nothing to close" in again.content.decode()
    interrupted.refresh_from_db()
    assert (
        interrupted.state == "closed_broadcasted" and interrupted.close_reason == "found by comment"
    )


def test_it_closes_as_never_left_only_when_the_node_has_no_such_transaction(
    client, closer, interrupted, wallet
):
    u = urls(interrupted)
    no_reason = client.post(u["close"], {"method": "never_left", "reason": ""})
    assert (
        no_reason.status_code == 200 and Broadcast.objects.get(pk=interrupted.pk).state == "opened"
    )

    done = client.post(
        u["close"], {"method": "never_left", "reason": "sendmany never reached the node"}
    )

    assert done.status_code == 302
    interrupted.refresh_from_db()
    assert (interrupted.state, interrupted.close_method, interrupted.closed_by) == (
        "closed_failed",
        "never_left",
        closer,
    )
    assert OutgoingTransaction.objects.get().state == "queued"
    assert "never left" in LogEntry.objects.get(object_id=str(interrupted.pk)).change_message


def test_it_refuses_never_left_when_the_comment_is_on_the_node(client, closer, interrupted, wallet):
    wallet.get_backend().send_many(interrupted.outputs, interrupted.label)
    page = client.post(urls(interrupted)["close"], {"method": "never_left", "reason": "sure?"})
    assert page.status_code == 200 and "it left" in page.content.decode()
    interrupted.refresh_from_db()
    assert interrupted.state == Broadcast.State.OPENED


def test_it_queues_an_outgoing_transaction_from_the_admin_form(
    client, operator, viewer, wallet, node
):
    credit_user(wallet, "frank", 10**8)
    url = reverse("admin:broadcasts_outgoingtransaction_queue")
    address = node.rpc("getnewaddress")
    form = {
        "user_id": "frank",
        "wallet": wallet.pk,
        "address": address,
        "amount": "0.25",
        "label": "ops",
    }
    grant(viewer, "broadcasts.view_outgoingtransaction")
    client.force_login(viewer)
    assert client.post(url, form).status_code == 403
    assert (
        "Queue outgoing"
        not in client.get(
            reverse("admin:broadcasts_outgoingtransaction_changelist")
        ).content.decode()
    )
    grant(operator, "broadcasts.view_outgoingtransaction", "broadcasts.queue_outgoingtransaction")
    client.force_login(operator)
    bad = client.post(url, dict(form, address="nope"))
    assert bad.status_code == 200 and "not a valid" in bad.content.decode()
    assert (
        "no BTC account for this user"
        in client.post(url, dict(form, user_id="frnak")).content.decode()
    )
    too_precise = client.post(url, dict(form, amount="0.000000001"))
    assert "more than 8 decimals" in too_precise.content.decode()

    assert client.post(url, form).status_code == 302

    out = OutgoingTransaction.objects.get()
    assert (out.address, out.amount, out.created_by, out.account.user_id) == (
        address,
        25_000_000,
        operator,
        "frank",
    )


def test_it_shows_a_late_reply_in_red_until_someone_acknowledges_it(client, closer, viewer, wallet):
    flagged = Broadcast.objects.create(
        wallet=wallet,
        state="closed_failed",
        label="late-1",
        opened_at=timezone.now(),
        closed_at=timezone.now(),
        closed_by=closer,
        close_method="never_left",
        close_reason="looked empty",
        txid="ef" * 32,
        needs_attention=True,
        last_error="LATE REPLY: closed as never left, but the node paid it",
    )
    page = client.get(reverse("admin:index")).content.decode()
    assert "1 broadcast needs attention" in page and "?interrupted=attention" in page
    change = client.get(urls(flagged)["change"]).content.decode()
    assert "LATE REPLY" in change and "Acknowledge" in change
    ack = reverse("admin:broadcasts_broadcast_acknowledge", args=[flagged.pk])
    grant(viewer, "broadcasts.view_broadcast")
    client.force_login(viewer)
    assert client.post(ack, {"reason": "x"}).status_code == 403
    client.force_login(closer)
    client.post(ack, {"reason": ""})
    assert Broadcast.objects.get(pk=flagged.pk).needs_attention

    client.post(ack, {"reason": "asked the user to return the double payment"})

    flagged.refresh_from_db()
    assert (
        not flagged.needs_attention
        and "asked the user" in flagged.last_error
        and "LATE REPLY" in flagged.last_error
    )
    assert "need attention" not in client.get(reverse("admin:index")).content.decode()
    assert "Acknowledged" in LogEntry.objects.get(object_id=str(flagged.pk)).change_message


def test_it_closes_by_hand_through_one_service_that_checks_the_permission(
    viewer, operator, interrupted
):
    from django.core.exceptions import PermissionDenied

    from broadcasts.closing import close_broadcast_by_hand
    from cryptoadmin.errors import CloseRefused
    from ledger.actors import SYSTEM

    with pytest.raises(PermissionDenied):
        close_broadcast_by_hand(interrupted, "never_left", by=viewer, reason="not mine to close")
    interrupted.refresh_from_db()
    assert interrupted.state == Broadcast.State.OPENED and not LogEntry.objects.exists()
    with pytest.raises(CloseRefused, match="names the person"):
        close_broadcast_by_hand(interrupted, "never_left", by=SYSTEM, reason="closed from a script")
    grant(operator, CLOSE)
    done = close_broadcast_by_hand(
        interrupted, "never_left", by=operator, reason="checked the node"
    )
    interrupted.refresh_from_db()
    assert "never left" in done and "never left" in LogEntry.objects.get().change_message
    assert (interrupted.state, interrupted.closed_by, interrupted.close_reason) == (
        "closed_failed",
        operator,
        "checked the node",
    )
