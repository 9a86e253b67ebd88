"""Events (read-only, replayable), webhook endpoints (the Admin role manages them; the secret
is shown once), deliveries and their attempts (read-only, redeliverable)."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cryptoadmin.words import count
from ledger.actors import allowed
from ledger.admin import ReadOnlyAdmin
from ledger.outbox import TYPES

from . import endpoints
from .models import Attempt, Delivery, Event, WebhookEndpoint


def _short(text, limit):
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "object_type", "object_id", "sequence", "created_at"]
    list_filter = ["type", "object_type"]
    search_fields = ["=uid", "=object_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["uid", "type", "created_at", "object_type", "object_id", "sequence", "pretty_data"]
    readonly_fields = fields
    actions = ["replay"]

    @admin.display(description="data")
    def pretty_data(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))

    def has_replay_permission(self, request):
        return allowed(request.user, endpoints.REPLAY_PERM)

    @admin.action(
        description="Send selected events again to their endpoints (same webhook-id)",
        permissions=["replay"],
    )
    def replay(self, request, queryset):
        sent = endpoints.redeliver(list(queryset.order_by("id")), by=request.user)
        self.message_user(request, f"Queued {count(sent, 'delivery', 'deliveries')}.")


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "event_types", "enabled", "disabled_reason"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        endpoints.check_url(url)
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["short_url", "types", "enabled", "failing_since", "pending", "created_at"]
    list_filter = ["enabled"]
    readonly_fields = ["secret_hint", "failing_since", "created_by", "created_at"]
    actions = ["rotate"]

    def get_queryset(self, request):
        pending = Count("deliveries", filter=Q(deliveries__state="pending"))
        return super().get_queryset(request).annotate(pending_count=pending)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["url", "event_types", "enabled"]
        return ["url", "event_types", "enabled", "disabled_reason", *self.readonly_fields]

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: its deliveries and attempts stay to be read

    def has_rotate_permission(self, request):
        return allowed(request.user, endpoints.CHANGE_PERM)

    @admin.display(description="URL")
    def short_url(self, obj):
        return _short(obj.url, 60)

    @admin.display(description="event types")
    def types(self, obj):
        return _short(", ".join(obj.event_types) or "all", 40)

    @admin.display(description="pending")
    def pending(self, obj):
        return obj.pending_count

    @admin.display(description="secret")
    def secret_hint(self, obj):
        return f"{obj.secret[:10]}… (shown once when created or rotated)"

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        made = endpoints.add_endpoint(
            obj.url, form.cleaned_data["event_types"], by=request.user, enabled=obj.enabled
        )
        obj.pk, obj.secret, obj.created_at = made.pk, made.secret, made.created_at
        obj._state.adding = False

    def log_addition(self, request, obj, message):
        pass  # the service wrote the history entry

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, obj, obj.secret, "created")

    @admin.action(description="Rotate the signing secret", permissions=["rotate"])
    def rotate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Rotate one endpoint at a time.", messages.WARNING)
            return None
        obj = queryset.get()
        return self._secret_page(
            request, obj, endpoints.rotate_secret(obj, by=request.user), "rotated"
        )

    def _secret_page(self, request, obj, secret, how):
        # Rendered directly, not through messages: the secret never lands in a cookie or session.
        return TemplateResponse(
            request,
            "events/secret.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Webhook secret {how}",
                "endpoint": obj,
                "secret": secret,
                "how": how,
                "opts": self.model._meta,
                "list_url": reverse("admin:events_webhookendpoint_changelist"),
            },
        )

    def get_urls(self):
        return [
            path(
                "replay/",
                self.admin_site.admin_view(self.replay_view),
                name="events_webhookendpoint_replay",
            ),
            *super().get_urls(),
        ]

    def replay_view(self, request):
        if not allowed(request.user, endpoints.REPLAY_PERM):
            raise PermissionDenied
        form = ReplayForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            chosen = [d["endpoint"]] if d["endpoint"] else None
            sent = endpoints.replay_range(d["start"], d["end"], by=request.user, endpoints=chosen)
            self.message_user(request, f"Queued {count(sent, 'delivery', 'deliveries')}.")
            return TemplateResponse(
                request, "events/replay.html", self._replay_context(request, form)
            )
        return TemplateResponse(request, "events/replay.html", self._replay_context(request, form))

    def _replay_context(self, request, form):
        return {
            **self.admin_site.each_context(request),
            "title": "Replay events of a time range",
            "form": form,
            "opts": self.model._meta,
        }


class ReplayForm(forms.Form):
    start = forms.DateTimeField(help_text="From (UTC), e.g. 2026-01-31 14:00")
    end = forms.DateTimeField(help_text="Until (UTC), excluded")
    endpoint = forms.ModelChoiceField(
        WebhookEndpoint.objects.filter(enabled=True),
        required=False,
        empty_label="every subscribed endpoint",
    )

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            raise forms.ValidationError("The end must come after the start.", code="bad_range")
        return data


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = ["started_at", "outcome", "status", "duration_ms", "response_excerpt"]
    readonly_fields = fields  # shown escaped, as all read-only fields are
    extra = 0

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("events.view_delivery")  # part of the delivery

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "event",
        "endpoint",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
    ]
    list_filter = ["state", "endpoint"]
    list_select_related = ["event", "endpoint"]
    show_full_result_count = False
    inlines = [AttemptInline]
    actions = ["redeliver"]

    def has_redeliver_permission(self, request):
        return allowed(request.user, endpoints.REPLAY_PERM)

    @admin.action(description="Redeliver selected (same webhook-id)", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        sent = 0
        for delivery in queryset.select_related("event", "endpoint"):
            sent += endpoints.redeliver(
                [delivery.event], by=request.user, endpoints=[delivery.endpoint]
            )
        self.message_user(request, f"Queued {count(sent, 'delivery', 'deliveries')}.")
