"""Schedules run the project's registered jobs only (the SCHEDULES of each app).

The admin offers those jobs as a choice and lets a role change only the interval, the next
run and whether it repeats; any other function, hook, argument or option is refused by the
form and again when the row is saved, whoever saves it (superusers and code included)."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

pytestmark = pytest.mark.django_db

ADD = "/admin/django_q/schedule/add/"
SHELL = "subprocess.check_output"


def _change_url(schedule):
    return f"/admin/django_q/schedule/{schedule.pk}/change/"


def _form(**fields):
    """Every field django-q2's own schedule form has, as a browser would post it."""
    when = timezone.localtime() + timezone.timedelta(minutes=5)
    data = {
        "name": "harmless",
        "func": "ledger.tasks.poll_all_currencies",
        "hook": "",
        "args": "",
        "kwargs": "",
        "schedule_type": "I",
        "minutes": "1",
        "repeats": "-1",
        "next_run_0": when.strftime("%Y-%m-%d"),
        "next_run_1": when.strftime("%H:%M:%S"),
        "cluster": "",
        "intended_date_kwarg": "",
        "cron": "",
    }
    data.update(fields)
    return data


def _polling():
    return Schedule.objects.get(name="ledger.update_confirmations")


def test_it_refuses_an_admin_who_schedules_a_shell_command(client, admin):
    client.force_login(admin)
    response = client.post(ADD, _form(name="pwn", func=SHELL, args="['id']"))
    assert response.status_code == 200  # the form again, with its error
    assert not Schedule.objects.filter(func=SHELL).exists()
    assert not Schedule.objects.filter(name="pwn").exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("func", SHELL),
        ("hook", "os.system"),
        ("args", "'id'"),
        ("kwargs", "q_options={'hook': 'os.system'}"),
        ("cluster", "elsewhere"),
        ("intended_date_kwarg", "shell"),
        ("name", "renamed"),
    ],
)
def test_it_keeps_an_admin_from_changing_what_a_schedule_runs(client, admin, field, value):
    client.force_login(admin)
    schedule = _polling()
    fields = ("func", "hook", "args", "kwargs", "cluster", "intended_date_kwarg", "name")
    before = {f: getattr(schedule, f) or None for f in fields}  # a form saves an empty field as ''
    client.post(
        _change_url(schedule), _form(**{**{k: v or "" for k, v in before.items()}, field: value})
    )
    schedule.refresh_from_db()
    assert {f: getattr(schedule, f) or None for f in fields} == before


def test_it_lets_an_admin_change_the_interval_next_run_and_repeats(client, admin):
    client.force_login(admin)
    schedule = _polling()
    response = client.post(
        _change_url(schedule),
        _form(
            func=schedule.func,
            name=schedule.name,
            minutes="5",
            repeats="0",
            next_run_0="2031-01-02",
            next_run_1="03:04:05",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule.refresh_from_db()
    assert (schedule.minutes, schedule.repeats) == (5, 0)
    assert (
        timezone.localtime(schedule.next_run).strftime("%Y-%m-%d %H:%M:%S") == "2031-01-02 03:04:05"
    )


def test_it_offers_only_registered_jobs_when_adding(client, admin):
    from ops.scheduler import all_schedules

    client.force_login(admin)
    form = client.get(ADD).context["adminform"].form
    offered = {value for value, _ in form.fields["func"].choices if value}
    assert offered == {s["func"] for s in all_schedules()}
    response = client.post(ADD, _form(name="second poll"))
    assert response.status_code == 302
    assert Schedule.objects.get(name="second poll").func == "ledger.tasks.poll_all_currencies"


def test_it_lets_a_viewer_and_an_operator_change_nothing(client, viewer, operator):
    schedule = _polling()
    for user in (viewer, operator):
        client.force_login(user)
        assert client.get("/admin/django_q/schedule/").status_code == 200
        client.post(
            _change_url(schedule), _form(func=schedule.func, name=schedule.name, minutes="7")
        )
        client.post(ADD, _form(name="x"))
        schedule.refresh_from_db()
        assert schedule.minutes == 1 and not Schedule.objects.filter(name="x").exists()


@pytest.mark.parametrize(
    "fields",
    [
        dict(func=SHELL),
        dict(func="ledger.tasks.poll_all_currencies", hook="os.system"),
        dict(func="ledger.tasks.poll_all_currencies", args="'rm -rf /'"),
        dict(func="ledger.tasks.poll_all_currencies", kwargs="q_options={'hook': 'os.system'}"),
        dict(func="ledger.tasks.poll_all_currencies", intended_date_kwarg="x"),
    ],
)
def test_it_refuses_to_save_an_unregistered_job_whoever_saves_it(fields):
    # What a superuser's admin form, a shell or django_q.tasks.schedule() would do.
    with pytest.raises(ValidationError):
        Schedule.objects.create(name="code", schedule_type="I", minutes=1, **fields)
    assert not Schedule.objects.filter(name="code").exists()


def test_it_refuses_to_point_an_existing_schedule_elsewhere():
    schedule = _polling()
    schedule.func = SHELL
    with pytest.raises(ValidationError):
        schedule.save()
    assert _polling().func == "ledger.tasks.poll_all_currencies"


def test_it_refuses_a_superusers_shell_schedule_through_the_admin(client, superuser):
    client.force_login(superuser)
    client.post(ADD, _form(name="root-pwn", func=SHELL, args="['id']"))
    assert not Schedule.objects.filter(func=SHELL).exists()


def _as_before_the_checks():
    """The database as it was before this version: no trigger on the schedule table."""
    from django.db import connection

    from ops.scheduler import TRIGGER

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON django_q_schedule")


@pytest.mark.django_db(databases=["default", "sqlite"])
@pytest.mark.parametrize("alias", ["default", "sqlite"])
def test_it_refuses_unregistered_rows_at_the_database(alias):
    # QuerySet.update(), bulk_create and raw SQL skip save-time checks; the trigger does not.
    from django.db import DatabaseError, connections, transaction

    rows = Schedule.objects.using(alias)
    schedule = rows.get(name="ledger.update_confirmations")
    attempts = [
        lambda: rows.filter(pk=schedule.pk).update(func=SHELL),
        lambda: rows.filter(pk=schedule.pk).update(hook="os.system"),
        lambda: rows.bulk_create([Schedule(name="bulk", func=SHELL, schedule_type="I", minutes=1)]),
        lambda: (
            connections[alias]
            .cursor()
            .execute(
                "UPDATE django_q_schedule SET kwargs = %s WHERE id = %s",
                ["q_options={'hook': 'os.system'}", schedule.pk],
            )
        ),
    ]
    for attempt in attempts:
        with pytest.raises(DatabaseError), transaction.atomic(using=alias):
            attempt()
    schedule.refresh_from_db()
    assert (schedule.func, schedule.hook, schedule.kwargs) == (
        "ledger.tasks.poll_all_currencies",
        None,
        None,
    )
    assert not rows.filter(name="bulk").exists()
    rows.filter(pk=schedule.pk).update(minutes=3)  # timing is the role's to change
    assert rows.get(pk=schedule.pk).minutes == 3


def test_it_removes_unregistered_schedules_at_migrate():
    # A row written before the checks existed.
    _as_before_the_checks()
    Schedule.objects.bulk_create(
        [Schedule(name="legacy", func=SHELL, schedule_type="I", minutes=1)]
    )
    call_command("migrate", verbosity=0)
    assert not Schedule.objects.filter(func=SHELL).exists()
    assert _polling().func == "ledger.tasks.poll_all_currencies"
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic():  # and the database refuses it again
        Schedule.objects.bulk_create(
            [Schedule(name="legacy", func=SHELL, schedule_type="I", minutes=1)]
        )


def test_it_never_queues_a_row_that_bypassed_the_save_check(monkeypatch):
    # bulk_create and update() skip save-time checks; the cluster saves every row it runs,
    # so the check refuses it there and its queueing is rolled back with it.
    from django_q import scheduler as q_scheduler
    from django_q.brokers import get_broker
    from django_q.models import OrmQ

    # The cluster closes stale connections first; here that would be the test's own transaction.
    monkeypatch.setattr(q_scheduler, "close_old_django_connections", lambda: None)
    scheduler = q_scheduler.scheduler

    past = timezone.now() - timezone.timedelta(minutes=1)
    # a row from before the checks: only the save-time one is left to stop it
    _as_before_the_checks()
    Schedule.objects.bulk_create(
        [
            Schedule(
                name="legacy",
                func=SHELL,
                args="['id']",
                schedule_type="I",
                minutes=1,
                next_run=past,
            )
        ]
    )
    scheduler(broker=get_broker())
    assert SHELL not in [q.task()["func"] for q in OrmQ.objects.all()]
