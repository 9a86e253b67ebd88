"""The events feed (events/feed.py): pages in a stable order with a cursor, and never skips an
event whose transaction committed after a later-numbered one."""

import subprocess
import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from events import feed
from events.models import Event
from ledger import outbox
from tests.support import PYTHON, REPO

pytestmark = pytest.mark.django_db(transaction=True)


def read_all(after=""):
    got = []
    while True:
        page = feed.page(after, 2)
        got += [e.object_id for e in page.events]
        after = page.next
        if not page.has_more:
            return got, after


def test_it_pages_events_in_commit_order_with_a_cursor():
    for n in range(5):
        outbox.emit("deposit.seen", "deposit", n)
    first = feed.page(None, 2)
    assert [e.object_id for e in first.events] == ["0", "1"] and first.has_more
    got, cursor = read_all(first.next)
    assert got == ["2", "3", "4"]
    outbox.emit("deposit.seen", "deposit", 5)
    assert [e.object_id for e in feed.page(cursor, 10).events] == ["5"]
    assert feed.page(feed.page(cursor, 10).next, 10).events == []
    body = first.as_dict()
    assert body["events"][0]["type"] == "deposit.seen" and body["next"] == first.next


def test_it_never_skips_an_event_committed_after_a_later_numbered_one():
    opened, release = threading.Event(), threading.Event()

    def slow_writer():
        with transaction.atomic():
            outbox.emit("deposit.seen", "deposit", "early")  # takes the lower id and xid
            opened.set()
            release.wait(10)
        connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert opened.wait(10)
    outbox.emit("deposit.seen", "deposit", "late")  # a higher number, committed first
    page = feed.page(None, 10)
    assert page.events == []  # "late" waits until "early" can no longer appear behind it
    release.set()
    writer.join(10)
    assert Event.objects.get(object_id="early").id < Event.objects.get(object_id="late").id
    assert [e.object_id for e in feed.page(page.next, 10).events] == ["early", "late"]


def test_it_refuses_a_bad_cursor_or_limit_and_writes_nothing():
    for after, limit, code in (
        ("x", 5, "bad_cursor"),
        ("1-", 5, "bad_cursor"),
        ("", 0, "bad_limit"),
        ("", 1001, "bad_limit"),
        ("", "ten", "bad_limit"),
    ):
        with pytest.raises(feed.FeedError) as caught:
            feed.page(after, limit)
        assert caught.value.code == code
    outbox.emit("deposit.seen", "deposit", 1)
    with CaptureQueriesContext(connection) as queries:
        feed.page("", 10)
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in queries.captured_queries)


def test_it_misses_nothing_while_four_writer_processes_commit_out_of_order(child_env):
    writers = [
        subprocess.Popen(
            [PYTHON, "tests/events_writer_child.py", f"w{n}", "40", str(n)],
            cwd=REPO,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    seen, after, deadline = [], "", time.monotonic() + 120
    while time.monotonic() < deadline:
        running = any(w.poll() is None for w in writers)
        page = feed.page(after, 7)
        seen += [e.object_id for e in page.events]
        after = page.next
        if not running and not page.has_more:
            break
    for w in writers:
        out, err = w.communicate(timeout=30)
        assert w.returncode == 0 and "done" in out, err
    written = list(Event.objects.values_list("object_id", flat=True))
    assert len(written) >= 160
    assert sorted(seen) == sorted(written) and len(set(seen)) == len(seen)
