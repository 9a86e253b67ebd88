import json

import pytest
from django.utils import timezone

from tests.support import make_currency, make_wallet

pytestmark = pytest.mark.django_db

TOKEN = "health-token-for-the-tests-0123456789"


@pytest.fixture(autouse=True)
def health_token(settings):
    settings.HEALTH_TOKEN = TOKEN


@pytest.fixture(autouse=True)
def fresh_probes():
    # Node probes are cached for a few seconds; each test starts with none.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _recent_task():
    """A scheduler at work: a task just ran and every schedule's next run is ahead (rows
    registered when the test database was made would look overdue later in the suite)."""
    from django_q.models import Schedule, Task

    now = timezone.now()
    Schedule.objects.update(next_run=now)
    Task.objects.create(
        id="recent", name="poll-run", func="x.y", started=now, stopped=now, success=True
    )


def _get(client, **headers):
    # The detailed answer, as a monitor holding HEALTH_TOKEN asks for it.
    headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {TOKEN}")
    response = client.get("/health", **headers)
    return response.status_code, json.loads(response.content)


def test_it_is_200_with_database_and_reachable_node(client, wallet, node):
    _recent_task()
    status, body = _get(client)
    assert status == 200, body
    assert body["database"]["ok"] is True
    assert body["nodes"]["wallets"][wallet.name]["block_height"] == node.rpc("getblockcount")
    assert body["ok"] is True


def test_it_is_503_when_a_node_is_unreachable_and_shows_no_secret(client, btc):
    from ledger.models import Wallet

    Wallet.objects.create(
        name="down", currency=btc, backend_settings={"url": "http://rpcuser:s3cret@127.0.0.1:9"}
    )
    status, body = _get(client)
    assert status == 503
    assert body["nodes"]["wallets"]["down"]["ok"] is False
    raw = json.dumps(body)
    assert "s3cret" not in raw and "rpcuser" not in raw


def _poll_schedule(next_run):
    """The only schedule: the poller's, due at `next_run`."""
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    Schedule.objects.create(
        name="poll",
        func="ledger.tasks.poll_all_currencies",
        schedule_type="I",
        minutes=1,
        next_run=next_run,
    )


def test_it_is_503_when_schedules_exist_but_nothing_ran(client, db):
    _poll_schedule(next_run=timezone.now() - timezone.timedelta(minutes=10))
    status, body = _get(client)
    assert status == 503
    assert body["scheduler"]["ok"] is False
    assert body["scheduler"]["overdue"] == ["poll"]


def test_it_is_200_when_the_scheduler_ran_recently(client, db):
    _poll_schedule(next_run=timezone.now() + timezone.timedelta(seconds=30))
    _recent_task()
    status, body = _get(client)
    assert status == 200, body
    assert body["scheduler"]["last_task_at"] is not None


def test_it_refuses_other_methods(client, db):
    assert client.post("/health").status_code == 405


def test_it_reports_each_wallet_separately(client, db, node):
    btc = make_currency("BTC")
    good = make_wallet(btc, node, name="good")
    from ledger.models import Wallet

    Wallet.objects.create(
        name="bad", currency=btc, backend_settings={"url": "http://u:p@127.0.0.1:9"}
    )
    status, body = _get(client)
    assert status == 503
    assert body["nodes"]["wallets"][good.name]["ok"] is True
    assert body["nodes"]["wallets"]["bad"]["ok"] is False


def test_it_is_503_while_a_broadcast_is_interrupted(client, wallet):
    from broadcasts.models import Broadcast

    _recent_task()
    broadcast = Broadcast.objects.create(
        wallet=wallet, state=Broadcast.State.OPENED, opened_at=timezone.now()
    )
    status, body = _get(client)
    assert status == 503
    assert body["broadcasts"] == {"ok": False, "interrupted": [broadcast.pk]}


def test_it_tells_an_anonymous_caller_only_whether_all_is_well(client, btc):
    from ledger.models import Wallet

    Wallet.objects.create(
        name="down", currency=btc, backend_settings={"url": "http://rpcuser:s3cret@127.0.0.1:9"}
    )
    from django_q.models import Schedule

    # Not a fresh start: the schedules are an hour late, so all is not well.
    Schedule.objects.update(next_run=timezone.now() - timezone.timedelta(hours=1))
    response = client.get("/health")
    assert response.status_code == 503
    assert json.loads(response.content) == {"ok": False}


def test_it_gives_details_to_a_wrong_token_never(client, wallet):
    for header in ("Bearer wrong", f"Bearer {TOKEN}x", f"Token {TOKEN}", TOKEN, "Bearer "):
        response = client.get("/health", HTTP_AUTHORIZATION=header)
        assert set(json.loads(response.content)) == {"ok"}, header


def test_it_gives_no_details_without_a_configured_token(client, wallet, settings):
    settings.HEALTH_TOKEN = ""
    response = client.get("/health", HTTP_AUTHORIZATION="Bearer ")
    assert set(json.loads(response.content)) == {"ok"}


def test_it_gives_details_to_a_staff_session(client, wallet, viewer):
    client.force_login(viewer)
    body = json.loads(client.get("/health").content)
    assert body["nodes"]["wallets"][wallet.name]["ok"] is True
    assert "database" in body and "scheduler" in body


def test_it_gives_no_details_to_a_signed_in_non_staff_user(client, wallet, outsider):
    client.force_login(outsider)
    assert set(json.loads(client.get("/health").content)) == {"ok"}


def test_it_calls_block_io_once_for_many_detailed_hits_and_never_for_anonymous_ones(
    client, blockio_wallet, blockio
):
    for _ in range(5):
        assert client.get("/health").status_code in (200, 503)
    assert blockio.requests == []  # anonymous hits read what the scheduler recorded
    assert _get(client)[0] in (200, 503)
    first_probe = len(blockio.requests)
    assert first_probe >= 1  # the first detailed hit really asked the node
    for _ in range(20):
        assert _get(client)[0] in (200, 503)
    assert (
        len(blockio.requests) == first_probe
    )  # later hits within seconds are served from the cache


def test_it_is_503_while_a_late_reply_needs_attention(client, wallet):
    from broadcasts.models import Broadcast

    _recent_task()
    status, body = _get(client)
    assert body["broadcasts"] == {"ok": True, "interrupted": []}
    flagged = Broadcast.objects.create(
        wallet=wallet,
        state="broadcasted",
        txid="7c" * 32,
        opened_at=timezone.now(),
        needs_attention=True,
        last_error="LATE REPLY",
    )
    status, body = _get(client)
    assert status == 503
    assert body["broadcasts"] == {"ok": False, "interrupted": [], "attention": [flagged.pk]}


def test_it_gives_no_details_to_a_staff_session_without_its_second_factor(client, operator):
    _recent_task()
    client.force_login(operator, second_factor=False)
    assert json.loads(client.get("/health").content) == {"ok": True}
    assert client.get("/metrics").status_code == 403  # refused alike
    client.force_login(operator)
    assert "database" in json.loads(client.get("/health").content)


def test_it_is_200_on_a_fresh_start_before_any_task_ran(client, db):
    # Just migrated: the schedules are registered, no task has run yet and none is late.
    from django_q.models import Schedule, Task

    Schedule.objects.update(next_run=timezone.now() + timezone.timedelta(seconds=30))
    assert not Task.objects.exists()
    status, body = _get(client)
    assert status == 200, body
    assert body["scheduler"]["ok"] is True and body["scheduler"]["last_task_at"] is None
