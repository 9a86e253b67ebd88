"""Schedules are registered idempotently after migrate."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from ops.scheduler import all_schedules

pytestmark = pytest.mark.django_db


def test_it_registers_each_job_once_after_two_migrates():
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    names = list(Schedule.objects.values_list("name", flat=True))
    assert sorted(names) == sorted(s["name"] for s in all_schedules())
    assert {
        "ledger.update_confirmations",
        "ledger.rescan_addresses",
        "broadcasts.broadcast",
    } <= set(names)


def test_it_points_every_schedule_at_an_importable_function():
    from django.utils.module_loading import import_string

    for schedule in Schedule.objects.all():
        assert callable(import_string(schedule.func)), schedule.func


def test_it_polls_every_minute_and_rescans_hourly():
    minutes = dict(Schedule.objects.values_list("name", "minutes"))
    assert minutes["ledger.update_confirmations"] == 1
    assert minutes["ledger.rescan_addresses"] == 60
