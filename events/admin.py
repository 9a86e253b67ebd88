"""Events (read-only), webhook endpoints (the Admin role manages them), deliveries and their
attempts (read-only, with redelivery)."""

import json

from django.contrib import admin
from django.utils.html import format_html

from ledger.admin import ReadOnlyAdmin

from .models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "object_type", "object_id", "sequence", "created_at"]
    list_filter = ["type", "object_type"]
    search_fields = ["=uid", "=object_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["uid", "type", "created_at", "object_type", "object_id", "sequence", "pretty_data"]
    readonly_fields = fields

    @admin.display(description="data")
    def pretty_data(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))
