"""The outbox: an event row exists exactly when its change committed, numbered per object."""

import pytest
from django.db import transaction

from events.models import Delivery, Event, WebhookEndpoint
from ledger import outbox
from ledger.outbox import Emitted

pytestmark = pytest.mark.django_db(databases=["default", "sqlite"])
ENGINES = ["default", "sqlite"]


class Rollback(Exception):
    pass


@pytest.mark.parametrize("using", ENGINES)
def test_it_writes_nothing_for_a_rolled_back_change(using):
    with pytest.raises(Rollback), transaction.atomic(using=using):
        outbox.emit("deposit.seen", "deposit", 7, {"txid": "ab"}, using=using)
        assert Event.objects.using(using).filter(object_id="7").count() == 1
        raise Rollback
    assert not Event.objects.using(using).filter(object_id="7").exists()
    outbox.emit("deposit.seen", "deposit", 7, using=using)
    # The rolled-back number is not burnt either: the counter rolled back with it.
    assert Event.objects.using(using).get(object_id="7").sequence == 1


@pytest.mark.parametrize("using", ENGINES)
def test_it_numbers_each_objects_events_in_sequence(using):
    with transaction.atomic(using=using):
        outbox.emit("deposit.seen", "deposit", 1, using=using)
        outbox.emit_many(
            [
                Emitted("deposit.confirmations", "deposit", "1", {"confirmations": 1}),
                Emitted("deposit.seen", "deposit", "2"),
                Emitted("deposit.confirmations", "deposit", "1", {"confirmations": 2}),
                Emitted("withdrawal.queued", "withdrawal", "1"),
            ],
            using=using,
        )
    outbox.emit("deposit.credited", "deposit", 1, using=using)
    rows = Event.objects.using(using).order_by("id")
    got = [(e.object_type, e.object_id, e.sequence, e.type) for e in rows]
    assert got == [
        ("deposit", "1", 1, "deposit.seen"),
        ("deposit", "1", 2, "deposit.confirmations"),
        ("deposit", "2", 1, "deposit.seen"),
        ("deposit", "1", 3, "deposit.confirmations"),
        ("withdrawal", "1", 1, "withdrawal.queued"),
        ("deposit", "1", 4, "deposit.credited"),
    ]
    assert rows[1].data == {"confirmations": 1} and rows[3].data == {"confirmations": 2}
    assert len({e.uid for e in rows}) == len(got)


def test_it_stores_the_writing_transaction_id_on_postgresql():
    from django.db import connection

    outbox.emit("deposit.seen", "deposit", 1)
    outbox.emit("deposit.seen", "deposit", 2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        current = cursor.fetchone()[0]
    assert list(Event.objects.values_list("xid", flat=True)) == [current, current]


@pytest.mark.parametrize("using", ENGINES)
def test_it_queues_a_delivery_for_each_subscribed_enabled_endpoint(using):
    db = WebhookEndpoint.objects.using(using)
    every = db.create(url="http://127.0.0.1:9/all")
    deposits = db.create(url="http://127.0.0.1:9/d", event_types=["deposit.credited"])
    db.create(url="http://127.0.0.1:9/off", enabled=False)
    outbox.emit("deposit.seen", "deposit", 1, using=using)
    outbox.emit("deposit.credited", "deposit", 1, using=using)
    got = sorted(Delivery.objects.using(using).values_list("endpoint_id", "event__type", "state"))
    assert got == sorted(
        [
            (every.pk, "deposit.seen", "pending"),
            (every.pk, "deposit.credited", "pending"),
            (deposits.pk, "deposit.credited", "pending"),
        ]
    )


def test_it_refuses_an_unknown_event_type():
    with pytest.raises(ValueError):
        outbox.emit("deposit.seenn", "deposit", 1)
    assert not Event.objects.exists()
