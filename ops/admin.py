from django.contrib import admin

from . import scheduler_admin  # noqa: F401  django-q2's admin pages, re-registered
from .models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """What the alerts sent, and when: written by the scheduler only."""

    list_display = ["title", "kind", "first_seen_at", "last_sent_at", "sent_count", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["key", "title"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
