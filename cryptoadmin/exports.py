""" "Export CSV" on an admin list: the rows its filters and search select, every page of them.

A small view of our own rather than django-import-export: an export here is a read of what
the list shows, nothing is ever imported through it, and the list's own ChangeList builds the
queryset (filters, search, ordering exactly as on screen). Rows are streamed with .iterator(),
so a list of millions costs constant memory. Anyone who can view the list can export it; it
is a GET (no state changes), reached from a link beside the list's other tools, so a Viewer,
who has no actions, has it too. Amounts are in currency units (ledger.money.format_units) with
the code in its own column, so a spreadsheet can sum them."""

import csv

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path
from django.utils import timezone


class _Echo:
    def write(self, value):
        return value


class CsvExportMixin:
    """`csv_columns = [(header, function(obj) -> value), ...]` on the ModelAdmin."""

    csv_columns: list = []
    change_list_template = "admin/csv_export_change_list.html"

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_csv_view),
                name=f"{opts.app_label}_{opts.model_name}_export",
            ),
            *super().get_urls(),
        ]

    def export_csv_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            # The list itself answers these with its "?e=1" page; a file cannot: say why.
            return HttpResponseBadRequest(
                "bad_filter: a filter of this export is unknown or its value invalid\n",
                content_type="text/plain",
            )
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow([header for header, _ in self.csv_columns])
            for obj in queryset.iterator(chunk_size=2000):
                yield writer.writerow([_cell(column(obj)) for _, column in self.csv_columns])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        name = f"{self.model._meta.model_name}-{timezone.now():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


def _cell(value):
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    # A cell starting with one of these is a formula to some spreadsheet (OWASP's CSV injection
    # rule, with the full-width forms): labels, addresses and reasons come from outside, so
    # such text is quoted as text.
    return "'" + text if text[:1] in FORMULA_STARTS else text


FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
