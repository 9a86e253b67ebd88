"""Rules a CHECK cannot express, enforced by the database on SQLite and PostgreSQL alike:
- both accounts of a ledger row are of the row's currency (no cross-currency moves);
- the money columns of a ledger row never change (append-only: correct with a new row)."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION ledger_transaction_guard() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (NEW.amount IS DISTINCT FROM OLD.amount
      OR NEW.source_id IS DISTINCT FROM OLD.source_id
      OR NEW.destination_id IS DISTINCT FROM OLD.destination_id
      OR NEW.currency_id IS DISTINCT FROM OLD.currency_id) THEN
    RAISE EXCEPTION 'ledger rows are append-only: post a correcting entry instead'
      USING ERRCODE = '23514';
  END IF;
  IF (SELECT currency_id FROM ledger_account WHERE id = NEW.source_id) IS DISTINCT FROM NEW.currency_id
     OR (SELECT currency_id FROM ledger_account WHERE id = NEW.destination_id) IS DISTINCT FROM NEW.currency_id THEN
    RAISE EXCEPTION 'both accounts of a ledger transaction must be of its currency'
      USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_transaction_guard BEFORE INSERT OR UPDATE ON ledger_transaction
  FOR EACH ROW EXECUTE FUNCTION ledger_transaction_guard();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS ledger_transaction_guard ON ledger_transaction;
DROP FUNCTION IF EXISTS ledger_transaction_guard();
"""

SQLITE_FORWARD = [
    """CREATE TRIGGER ledger_transaction_same_currency BEFORE INSERT ON ledger_transaction
    WHEN (SELECT currency_id FROM ledger_account WHERE id = NEW.source_id) IS NOT NEW.currency_id
      OR (SELECT currency_id FROM ledger_account WHERE id = NEW.destination_id) IS NOT NEW.currency_id
    BEGIN SELECT RAISE(ABORT, 'both accounts of a ledger transaction must be of its currency'); END""",
    """CREATE TRIGGER ledger_transaction_append_only BEFORE UPDATE ON ledger_transaction
    WHEN NEW.amount IS NOT OLD.amount OR NEW.source_id IS NOT OLD.source_id
      OR NEW.destination_id IS NOT OLD.destination_id OR NEW.currency_id IS NOT OLD.currency_id
    BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: post a correcting entry instead'); END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS ledger_transaction_same_currency",
    "DROP TRIGGER IF EXISTS ledger_transaction_append_only",
]


def forward(apps, schema_editor):
    _run(schema_editor, PG_FORWARD, SQLITE_FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, PG_BACKWARD, SQLITE_BACKWARD)


def _run(schema_editor, pg_sql, sqlite_statements):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(pg_sql)
    elif vendor == "sqlite":
        for statement in sqlite_statements:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError(
            f"ledger triggers are written for PostgreSQL and SQLite, not {vendor}"
        )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
