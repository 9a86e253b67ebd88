"""What makes an operator's list page cost the same at a million rows as at a hundred.

- `CappedPaginator`: the list counts at most CAP + 1 rows (an unfiltered list of a big table
  shows PostgreSQL's own estimate of its size instead): COUNT(*) over millions of rows was
  the slowest part of every page.
- `IndexedSearch`: a search is resolved first, through exact lookups on indexed columns
  (txid, address, user id), to a handful of ids; the list then filters on those ids. No
  `icontains` over joins, no DISTINCT over their product.
- `InputFilter`: a list filter the operator types into (a user id, an account id), for
  values too many to list as links.
- `IndexedSorting`: a list sorts only by columns an index serves (headers and `?o=` alike)
  and shows no facets (Django's per-filter counts, uncapped): sorting or counting a whole
  table is never one request away.
"""

from __future__ import annotations

from functools import cached_property

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q

from .txids import parse_txid


class CappedPaginator(Paginator):
    """Counts up to CAP + 1 rows; past that, the unfiltered list of a PostgreSQL table
    reports the table's estimated size (pg_class.reltuples, kept by ANALYZE/autovacuum),
    and a filtered one reports CAP + 1 ("more than CAP": the last pages are not offered)."""

    CAP = 10_000

    @cached_property
    def count(self):
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return super().count
        capped = queryset.order_by()[: self.CAP + 1].count()
        if capped <= self.CAP:
            return capped
        if not queryset.query.where:
            estimate = _estimated_rows(queryset)
            if estimate is not None and estimate > capped:
                return estimate
        return capped


def _estimated_rows(queryset) -> int | None:
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [queryset.model._meta.db_table],
        )
        row = cursor.fetchone()
    return row[0] if row and row[0] > 0 else None


class SortableOnlyChangeList(ChangeList):
    """A change list whose `?o=` can only name a column of `sortable_by` (Django applies any
    column with an ordering and only hides the others' header links)."""

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class IndexedSorting:
    """ModelAdmin mixin for lists of large tables: no facets, and sortable only by the columns
    whose ordering is a column of the table an index starts with (the primary key, a unique or
    db_index field, the first field of an index without condition). An explicit
    `sortable_by` on the admin replaces the derived one."""

    show_facets = admin.ShowFacets.NEVER
    sortable_by = None

    def get_changelist(self, request, **kwargs):
        return SortableOnlyChangeList

    def get_sortable_by(self, request):
        if self.sortable_by is not None:
            return self.sortable_by
        return [
            name
            for name in self.get_list_display(request)
            if _is_indexed(self.model, _ordering_of(self, name))
        ]


def _ordering_of(model_admin, name):
    if callable(name):
        return getattr(name, "admin_order_field", None)
    try:
        return model_admin.model._meta.get_field(name).name
    except FieldDoesNotExist:
        attr = getattr(model_admin, name, None) or getattr(model_admin.model, name, None)
        return getattr(attr, "admin_order_field", None)


def _is_indexed(model, ordering) -> bool:
    if not isinstance(ordering, str) or "__" in ordering:
        return False  # an expression, or a column of another table
    try:
        field = model._meta.get_field(ordering.removeprefix("-"))
    except FieldDoesNotExist:
        return False  # an annotation
    if field.is_relation or not field.concrete:
        return False  # sorted by the related model's ordering: a join
    if field.primary_key or field.unique or field.db_index:
        return True
    return any(
        index.fields and index.fields[0].removeprefix("-") == field.name and index.condition is None
        for index in model._meta.indexes
    )


class IndexedSearch(IndexedSorting):
    """ModelAdmin mixin: `search_q(term)` says which rows match, from indexed lookups only
    (each a query of its own, returning few ids), so the list's one query stays cheap."""

    paginator = CappedPaginator
    show_full_result_count = False
    # The search box shows; what it searches is search_q's, not these fields'.
    search_fields = ["=pk"]
    search_help_text = None

    def search_q(self, term: str) -> Q:
        raise NotImplementedError

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(self.search_q(term) if typed(term) else NOTHING), False


NOTHING = Q(pk__in=[])


def as_id(text) -> int | None:
    """A row id or code as a person typed it: ASCII digits that fit a 64-bit key, else None
    (str.isdigit() also says yes to '²' and '٣', which int() refuses)."""
    text = str(text).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def typed(text) -> bool:
    """Text a lookup may be given: PostgreSQL refuses a NUL character in a string."""
    return "\x00" not in text


def ids(queryset) -> list:
    """An indexed lookup's ids, evaluated now (a short list the list query filters on)."""
    return list(queryset.values_list("pk", flat=True)[:1000])


def txid_of(term: str) -> str | None:
    return parse_txid(term)


class InputFilter(admin.SimpleListFilter):
    """A filter with a text box: `?<parameter_name>=<value>`, applied by `filter_q(value)`."""

    template = "admin/ledger/input_filter.html"

    def lookups(self, request, model_admin):
        return []

    def has_output(self):
        return True

    def filter_q(self, value: str) -> Q:
        raise NotImplementedError

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        return queryset.filter(self.filter_q(value) if typed(value) else NOTHING)

    def choices(self, changelist):
        # The other parameters of the page, kept as hidden inputs of the filter's form.
        yield {
            "value": self.value() or "",
            "parameter_name": self.parameter_name,
            "others": [
                (k, v)
                for k, values in changelist.params.items()
                if k not in (self.parameter_name, "p")
                for v in (values if isinstance(values, list) else [values])
            ],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }
