from django.contrib import admin

from ledger.admin import ReadOnly

from . import scheduler_admin  # noqa: F401  django-q2's admin pages, re-registered
from .models import Alert


@admin.register(Alert)
class AlertAdmin(ReadOnly, admin.ModelAdmin):
    """What the alerts sent, and when: written by the scheduler only."""

    list_display = ["title", "kind", "first_seen_at", "last_sent_at", "sent_count", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["key", "title"]
