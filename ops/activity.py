"""One activity log: every money action (the admin history entries the services write through
ledger.actors.log_action: queue, approve, reject, import, close by hand, reconcile...) and every
setting change (django-auditlog's before/after values), newest first, filterable by person,
object and time. Read only; values and timestamps are written for people."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, time

from auditlog.models import LogEntry as AuditEntry
from django import forms
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

VIEW_PERM = "auditlog.view_logentry"
SHOWN = 200
APPS = ("ledger", "broadcasts", "balances", "ops", "auth", "django_q", "otp_totp", "otp_static")
ISO = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")


@dataclass
class Activity:
    when: datetime
    who: str
    what: str
    object_type: str
    object_repr: str
    object_url: str = ""
    changes: list = field(default_factory=list)  # [(field, before, after)]


def readable(value) -> str:
    """A stored value as a person reads it: timestamps in local time, lists joined, no []."""
    if value in (None, "", "None", "[]", "{}"):
        return "none"
    text = str(value)
    if text.startswith("[") and text.endswith("]"):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            return ", ".join(readable(i) for i in items) or "none"
    return ISO.sub(lambda m: _moment(m.group(0)), text)


def _moment(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def _url(content_type, object_id) -> str:
    if content_type is None or not object_id:
        return ""
    try:
        return reverse(
            f"admin:{content_type.app_label}_{content_type.model}_change", args=[object_id]
        )
    except NoReverseMatch:
        return ""


class ActivityForm(forms.Form):
    person = forms.CharField(required=False, max_length=150, help_text="A username")
    object = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Kind")
    object_id = forms.CharField(required=False, max_length=64, label="Id")
    since = forms.DateField(required=False, help_text="YYYY-MM-DD")
    until = forms.DateField(required=False, help_text="YYYY-MM-DD (included)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kinds = ContentType.objects.filter(app_label__in=APPS).order_by("app_label", "model")
        self.fields["object"].choices = [("", "every kind")] + [
            (ct.pk, f"{ct.app_label}: {ct.model_class()._meta.verbose_name}")
            for ct in kinds
            if ct.model_class() is not None
        ]


def _filtered(queryset, data, *, time_field, user_field, type_field, id_field):
    if data.get("person"):
        user = get_user_model().objects.filter(username=data["person"]).first()
        queryset = queryset.filter(**{user_field: user}) if user else queryset.none()
    if data.get("object"):
        queryset = queryset.filter(**{type_field: data["object"]})
    if data.get("object_id"):
        queryset = queryset.filter(**{id_field: data["object_id"]})
    tz = timezone.get_current_timezone()
    if data.get("since"):
        since = datetime.combine(data["since"], time.min, tz)
        queryset = queryset.filter(**{f"{time_field}__gte": since})
    if data.get("until"):
        until = datetime.combine(data["until"], time.max, tz)
        queryset = queryset.filter(**{f"{time_field}__lte": until})
    return queryset.order_by(f"-{time_field}")[:SHOWN]


def _audited_types() -> set:
    from auditlog.registry import auditlog

    return {ContentType.objects.get_for_model(m).pk for m in auditlog.get_models()}


def actions(data) -> list[Activity]:
    """The people's actions, without Django's own "Changed x" messages of audited models
    (the audit log says the same with the values)."""
    rows = _filtered(
        LogEntry.objects.select_related("user", "content_type"),
        data,
        time_field="action_time",
        user_field="user",
        type_field="content_type_id",
        id_field="object_id",
    )
    audited = _audited_types()
    return [
        Activity(
            e.action_time,
            e.user.get_username(),
            readable(e.get_change_message()) or e.get_action_flag_display(),
            e.content_type.name if e.content_type else "",
            e.object_repr,
            _url(e.content_type, e.object_id),
        )
        for e in rows
        if not (e.content_type_id in audited and e.change_message.startswith("[{"))
    ]


def changes(data) -> list[Activity]:
    rows = _filtered(
        AuditEntry.objects.select_related("actor", "content_type"),
        data,
        time_field="timestamp",
        user_field="actor",
        type_field="content_type_id",
        id_field="object_pk",
    )
    return [
        Activity(
            e.timestamp,
            e.actor.get_username() if e.actor else "the machine",
            e.get_action_display(),
            e.content_type.name if e.content_type else "",
            e.object_repr,
            _url(e.content_type, e.object_pk),
            [_change(name, values) for name, values in sorted((e.changes_dict or {}).items())],
        )
        for e in rows
    ]


def _change(name, values):
    label = name.replace("_", " ")
    if isinstance(values, dict):  # a many-to-many change
        return (label, values.get("operation", ""), readable(json.dumps(values.get("objects", []))))
    before, after = (list(values) + [None, None])[:2]
    return (label, readable(before), readable(after))


def activity_view(request):
    if not request.user.has_perm(VIEW_PERM):
        raise PermissionDenied
    form = ActivityForm(request.GET or None)
    valid = form.is_valid() if request.GET else True
    data = form.cleaned_data if request.GET and valid else {}
    rows = []
    if valid:
        rows = sorted(actions(data) + changes(data), key=lambda a: a.when, reverse=True)[:SHOWN]
    context = {
        **admin.site.each_context(request),
        "title": "Activity log",
        "form": form,
        "rows": rows,
        "shown": SHOWN,
    }
    return TemplateResponse(request, "ops/activity.html", context, status=200 if valid else 400)
