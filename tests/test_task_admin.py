"""django-q2's task pages (successful, failed, queued): every action declares a permission.
A Viewer and an Operator re-run nothing and delete nothing; an Admin may re-run a project
task, and the failure record stays as evidence."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.utils import timezone
from django_q.models import Failure, OrmQ, Success, Task

pytestmark = pytest.mark.django_db

FAILURES = "/admin/django_q/failure/"
SUCCESSES = "/admin/django_q/success/"


def _task(success, func="ledger.tasks.poll_all_currencies", tid="a" * 32):
    now = timezone.now()
    return Task.objects.create(
        id=tid,
        name=f"task-{tid[:4]}",
        func=func,
        started=now,
        stopped=now,
        success=success,
        args=(),
        kwargs={},
        result="boom" if not success else None,
    )


def _act(client, url, action, task):
    return client.post(url, {"action": action, ACTION_CHECKBOX_NAME: [task.pk], "index": "0"})


@pytest.mark.parametrize("role_fixture", ["viewer", "operator"])
@pytest.mark.parametrize("url, success", [(FAILURES, False), (SUCCESSES, True)])
def test_it_lets_no_viewer_or_operator_rerun_a_task(client, request, role_fixture, url, success):
    client.force_login(request.getfixturevalue(role_fixture))
    task = _task(success)
    assert client.get(url).status_code == 200  # they do see the page
    _act(client, url, "resubmit_task", task)
    assert not OrmQ.objects.exists()  # nothing queued
    assert Task.objects.filter(pk=task.pk).exists()  # nothing deleted


@pytest.mark.parametrize("role_fixture", ["viewer", "operator", "admin"])
def test_it_lets_no_role_delete_a_failure_record(client, request, role_fixture):
    client.force_login(request.getfixturevalue(role_fixture))
    task = _task(False)
    _act(client, FAILURES, "delete_selected", task)
    client.post(f"{FAILURES}{task.pk}/delete/", {"post": "yes"})
    assert Failure.objects.filter(pk=task.pk).exists()


def test_it_shows_a_viewer_no_rerun_action(client, viewer):
    client.force_login(viewer)
    _task(False)
    page = client.get(FAILURES).content.decode()
    assert "resubmit_task" not in page and "delete_selected" not in page


def test_it_lets_an_admin_rerun_a_project_task_and_keeps_the_failure(client, admin):
    client.force_login(admin)
    task = _task(False)
    assert "resubmit_task" in client.get(FAILURES).content.decode()
    _act(client, FAILURES, "resubmit_task", task)
    assert OrmQ.objects.count() == 1
    assert Failure.objects.filter(pk=task.pk).exists()


def test_it_refuses_to_rerun_a_task_whose_function_the_project_does_not_ship(client, admin):
    client.force_login(admin)
    task = _task(True, func="subprocess.check_output", tid="b" * 32)
    _act(client, SUCCESSES, "resubmit_task", task)
    assert not OrmQ.objects.exists()


def test_it_lets_no_role_change_or_delete_a_queued_task(client, admin):
    from django_q.tasks import async_task

    client.force_login(admin)
    async_task("ledger.tasks.poll_all_currencies")
    queued = OrmQ.objects.get()
    assert client.get(f"/admin/django_q/ormq/{queued.pk}/change/").status_code == 200  # viewable
    client.post(f"/admin/django_q/ormq/{queued.pk}/change/", {"key": "other", "lock": ""})
    client.post(f"/admin/django_q/ormq/{queued.pk}/delete/", {"post": "yes"})
    queued.refresh_from_db()
    assert queued.key != "other"
    assert not Success.objects.exists()


def test_it_reruns_a_reconciliation_as_the_admin_who_reruns_it_once(
    client, admin, operator, db_wallet
):
    # The Operator's "Reconcile now" ran; its record holds the Operator's id as an argument.
    done = _task(True, func="ledger.tasks.reconcile_wallet_task", tid="c" * 32)
    Task.objects.filter(pk=done.pk).update(args=(db_wallet.pk, operator.pk))
    client.force_login(admin)
    for _ in range(3):
        _act(client, SUCCESSES, "resubmit_task", done)
    queued = [q.task for q in OrmQ.objects.all()]
    assert [(t["func"], t["args"]) for t in queued] == [
        ("ledger.tasks.reconcile_wallet_task", (db_wallet.pk, admin.pk))
    ]  # one scan at a time, run and recorded as the Admin
    db_wallet.refresh_from_db()
    assert db_wallet.reconcile_requested_by == admin


def test_it_refuses_to_rerun_a_project_task_queued_for_someone_without_its_flow(client, admin):
    client.force_login(admin)
    task = _task(True, func="ledger.tasks.reconcile_wallet_task", tid="d" * 32)
    Task.objects.filter(pk=task.pk).update(args=(987654,))  # its wallet is gone
    response = _act(client, SUCCESSES, "resubmit_task", task)
    assert not OrmQ.objects.exists()
    assert response.status_code == 302
