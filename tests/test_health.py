import json

import pytest
from django.utils import timezone

from tests.conftest import make_currency, make_wallet

pytestmark = pytest.mark.django_db


def _recent_task():
    from django_q.models import Task

    now = timezone.now()
    Task.objects.create(id="recent", name="poll-run", func="x.y", started=now, stopped=now, success=True)


def _get(client):
    response = client.get("/health")
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

    Wallet.objects.create(name="down", currency=btc, backend_settings={"url": "http://rpcuser:s3cret@127.0.0.1:9"})
    status, body = _get(client)
    assert status == 503
    assert body["nodes"]["wallets"]["down"]["ok"] is False
    raw = json.dumps(body)
    assert "s3cret" not in raw and "rpcuser" not in raw


def test_it_is_503_when_schedules_exist_but_nothing_ran(client, db):
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    Schedule.objects.create(name="poll", func="ledger.tasks.poll", schedule_type="I", minutes=1,
                            next_run=timezone.now() - timezone.timedelta(minutes=10))
    status, body = _get(client)
    assert status == 503
    assert body["scheduler"]["ok"] is False
    assert body["scheduler"]["overdue"] == ["poll"]


def test_it_is_200_when_the_scheduler_ran_recently(client, db):
    from django_q.models import Schedule, Task

    Schedule.objects.all().delete()
    Schedule.objects.create(name="poll", func="ledger.tasks.poll", schedule_type="I", minutes=1,
                            next_run=timezone.now() + timezone.timedelta(seconds=30))
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

    Wallet.objects.create(name="bad", currency=btc, backend_settings={"url": "http://u:p@127.0.0.1:9"})
    status, body = _get(client)
    assert status == 503
    assert body["nodes"]["wallets"][good.name]["ok"] is True
    assert body["nodes"]["wallets"]["bad"]["ok"] is False


def test_it_is_503_while_a_broadcast_is_interrupted(client, wallet):
    from broadcasts.models import Broadcast

    _recent_task()
    broadcast = Broadcast.objects.create(wallet=wallet, state=Broadcast.State.OPENED, opened_at=timezone.now())
    status, body = _get(client)
    assert status == 503
    assert body["broadcasts"] == {"ok": False, "interrupted": [broadcast.pk]}


def test_it_is_503_while_a_late_reply_needs_attention(client, wallet):
    from broadcasts.models import Broadcast

    _recent_task()
    status, body = _get(client)
    assert body["broadcasts"] == {"ok": True, "interrupted": []}
    flagged = Broadcast.objects.create(wallet=wallet, state="broadcasted", txid="7c" * 32, opened_at=timezone.now(),
                                       needs_attention=True, last_error="LATE REPLY")
    status, body = _get(client)
    assert status == 503
    assert body["broadcasts"] == {"ok": False, "interrupted": [], "attention": [flagged.pk]}
