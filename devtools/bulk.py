"""Bulk rows for benchmarks, written by SQL whose columns are read from the model.

A benchmark that lists a table's columns by hand breaks on the next migration that adds one
(a NOT NULL column with a default in the model has none in the database). `insert_select`
takes the expressions the benchmark cares about and fills every other column from the model:
its default, `now()` for a date with a default, NULL where the field allows it.
"""

from django.db import models


def insert_select(model, given: dict[str, str], source: str, connection=None) -> str:
    """`INSERT INTO <table> (<every column>) SELECT <expressions> <source>`: `given` maps a
    column to its SQL expression; the others get the model's default as a literal. A column
    the model gives no default and forbids NULL must be in `given` (ValueError otherwise)."""
    if connection is None:
        from django.db import connection
    columns, expressions = [], []
    for field in model._meta.concrete_fields:
        expression = given.get(field.column)
        if expression is None:
            expression = _default(field, connection)
        if expression is None:
            continue
        columns.append(connection.ops.quote_name(field.column))
        expressions.append(expression)
    unknown = set(given) - {f.column for f in model._meta.concrete_fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no column {', '.join(sorted(unknown))}")
    return (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} {source}"
    )


def _default(field, connection) -> str | None:
    """The SQL literal of a field's default, None to leave the column out (a serial primary
    key, or NULL allowed)."""
    if field.primary_key:
        return None
    if isinstance(field, models.DateTimeField) and (
        field.has_default() or field.auto_now or field.auto_now_add
    ):
        return "now()"
    if field.null and not field.has_default():
        return None
    # Django's own default: the declared one, or "" for a text field without NULL.
    value = field.get_default()
    if value is not None:
        value = field.get_db_prep_save(value, connection)
        with connection.cursor() as cursor:
            return cursor.cursor.mogrify("%s", [value]).decode()
    raise ValueError(f"{field.model.__name__}.{field.name} has no default: give its expression")
