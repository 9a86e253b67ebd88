"""The scheduler's pages read as a person reads: tasks named by their job, headers in words,
durations with a unit, a result column, few enough columns to fit without scrolling."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule, Task

pytestmark = pytest.mark.django_db


def _task(success, name="tango-enemy-foxtrot-yankee", result="3 checked"):
    started = timezone.now()
    return Task.objects.create(
        id=("a" if success else "b") * 32,
        name=name,
        func="ledger.tasks.poll_all_currencies",
        started=started,
        stopped=started + timedelta(milliseconds=420),
        success=success,
        args=(),
        kwargs={},
        result=result,
    )


def _headers(page):
    return [
        h.strip() for h in re.findall(r'<th scope="col"[^>]*>.*?<a [^>]*>([^<]*)</a>', page, re.S)
    ] + [
        h.strip()
        for h in re.findall(r'<th scope="col"[^>]*>\s*<div class="text"><span>([^<]*)</span>', page)
    ]


@pytest.mark.parametrize(
    "url, success", [("/admin/django_q/success/", True), ("/admin/django_q/failure/", False)]
)
def test_it_names_a_task_by_its_job_with_duration_and_result(client, viewer, url, success):
    _task(success)
    client.force_login(viewer)
    page = client.get(url).content.decode()
    cells = re.findall(
        r'<td class="field-(\w+)">(.*?)</td>|<th class="field-(\w+)">(.*?)</th>', page, re.S
    )
    text = " ".join(c[1] or c[3] for c in cells)
    assert "update confirmations" in text
    assert "tango-enemy-foxtrot-yankee" not in re.sub(r'title="[^"]*"', "", text)
    assert "0.42 s" in text and "3 checked" in text
    assert not [h for h in _headers(page) if "_" in h or h.isupper()]


def test_it_shows_a_schedules_last_run_in_words(client, viewer):
    task = _task(True)
    Schedule.objects.filter(name="ledger.update_confirmations").update(task=task.id)
    client.force_login(viewer)
    page = client.get("/admin/django_q/schedule/").content.decode()
    headers = _headers(page)
    assert "last run" in [h.lower() for h in headers] and "LAST_RUN" not in page
    assert not [h for h in headers if "_" in h]
    assert "every 1 minute" in page and "ok, 0.42 s" in page
