"""The audit log's list (django-auditlog's admin) as every large list: sorted only by indexed
columns, no facets."""

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin

from ledger.admin_lists import IndexedSorting

admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class AuditLogAdmin(IndexedSorting, LogEntryAdmin):
    pass
