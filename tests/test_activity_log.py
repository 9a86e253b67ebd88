"""One activity log: every money action (admin history entries written by the services) and
every setting change (the audit log), newest first, filterable by person, object and time, with
readable timestamps and values."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry as AuditEntry
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from cryptoadmin.audit import record_change
from ledger import actors

pytestmark = pytest.mark.django_db
URL = "/admin/activity/"


@pytest.fixture
def log(db_wallet, operator, admin):
    actors.log_action(operator, db_wallet, "Reconciled: difference 0.00000000 BTC")
    actors.log_action(admin, db_wallet, "Rescan queued")
    entry = record_change(
        db_wallet.currency,
        {
            "crediting_threshold": ("3", "4"),
            "polling_threshold": ("[]", "2026-12-05T19:18:15.373389+00:00"),
        },
    )
    AuditEntry.objects.filter(pk=entry.pk).update(actor=admin)
    return db_wallet


def test_it_shows_money_actions_and_setting_changes_in_one_list(client, viewer, log):
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    assert "Reconciled: difference 0.00000000 BTC" in page and "Rescan queued" in page
    assert "crediting threshold" in page and "3 → 4" in page
    assert "2026-12-05T19:18:15" not in page and "2026-12-05 19:18:15 UTC" in page
    assert "[]" not in page


def test_it_filters_by_person_object_and_time(client, viewer, log, operator, admin):
    client.force_login(viewer)
    by_operator = client.get(URL, {"person": operator.username}).content.decode()
    assert "Reconciled" in by_operator and "Rescan queued" not in by_operator
    by_admin = client.get(URL, {"person": admin.username}).content.decode()
    assert "Rescan queued" in by_admin and "crediting threshold" in by_admin
    currency_type = ContentType.objects.get(app_label="ledger", model="currency")
    on_currency = client.get(URL, {"object": f"{currency_type.pk}"}).content.decode()
    assert "crediting threshold" in on_currency and "Rescan queued" not in on_currency
    LogEntry.objects.filter(change_message="Rescan queued").update(
        action_time=timezone.now() - timedelta(days=3)
    )
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d")
    recent = client.get(URL, {"since": since}).content.decode()
    assert "Reconciled" in recent and "Rescan queued" not in recent


def test_it_answers_bad_filters_with_a_form_error_not_a_500(client, viewer, log):
    client.force_login(viewer)
    response = client.get(URL, {"since": "yesterday-ish", "object": "x"})
    assert response.status_code == 400 and b"Enter a valid date" in response.content


def test_it_refuses_the_log_to_someone_without_the_audit_permission(client, staff, log):
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2  # nothing written


def test_it_is_linked_from_the_home_page(client, viewer):
    client.force_login(viewer)
    assert f'href="{URL}"' in client.get("/admin/").content.decode()
