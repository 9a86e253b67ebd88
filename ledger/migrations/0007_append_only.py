"""The ledger is append-only in the database, not only in the code, on SQLite and PostgreSQL:

- a ledger row is never deleted, and no column of it ever changes (0002 already guards the
  money columns; this adds kind, network transaction, address, label, author and date: the
  code never updates a ledger row, a correction is a new row);
- an account that has entries keeps its currency, code, user and wallet: re-pointing it would
  move its whole history to someone else without a single new row.

Only triggers are created: existing rows are left exactly as they are. TRUNCATE stays
possible on PostgreSQL (it fires no row trigger and needs the table owner's privilege): the
test suite empties tables with it between transactional tests.
"""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION ledger_transaction_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ledger rows are append-only: they are never deleted, post a correcting entry instead'
      USING ERRCODE = '23514';
  END IF;
  IF NEW IS DISTINCT FROM OLD THEN
    RAISE EXCEPTION 'ledger rows are append-only: post a correcting entry instead'
      USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_transaction_append_only BEFORE UPDATE OR DELETE ON ledger_transaction
  FOR EACH ROW EXECUTE FUNCTION ledger_transaction_append_only();

CREATE OR REPLACE FUNCTION ledger_account_owner_fixed() RETURNS trigger AS $$
BEGIN
  IF (NEW.currency_id IS DISTINCT FROM OLD.currency_id OR NEW.code IS DISTINCT FROM OLD.code
      OR NEW.user_id IS DISTINCT FROM OLD.user_id OR NEW.wallet_id IS DISTINCT FROM OLD.wallet_id
      OR NEW.id IS DISTINCT FROM OLD.id)
     AND EXISTS (SELECT 1 FROM ledger_transaction WHERE source_id = OLD.id OR destination_id = OLD.id) THEN
    RAISE EXCEPTION 'an account with ledger entries keeps its currency, code and owner'
      USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_account_owner_fixed BEFORE UPDATE ON ledger_account
  FOR EACH ROW EXECUTE FUNCTION ledger_account_owner_fixed();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS ledger_transaction_append_only ON ledger_transaction;
DROP FUNCTION IF EXISTS ledger_transaction_append_only();
DROP TRIGGER IF EXISTS ledger_account_owner_fixed ON ledger_account;
DROP FUNCTION IF EXISTS ledger_account_owner_fixed();
"""

# 0002 named its SQLite money-column trigger ledger_transaction_append_only; these are new names.
SQLITE_FORWARD = [
    """CREATE TRIGGER ledger_transaction_no_delete BEFORE DELETE ON ledger_transaction
    BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: they are never deleted, post a correcting entry instead'); END""",
    """CREATE TRIGGER ledger_transaction_no_update BEFORE UPDATE ON ledger_transaction
    WHEN NEW.id IS NOT OLD.id OR NEW.kind IS NOT OLD.kind
      OR NEW.network_transaction_id IS NOT OLD.network_transaction_id OR NEW.address_id IS NOT OLD.address_id
      OR NEW.label IS NOT OLD.label OR NEW.created_at IS NOT OLD.created_at OR NEW.created_by_id IS NOT OLD.created_by_id
      OR NEW.amount IS NOT OLD.amount OR NEW.source_id IS NOT OLD.source_id
      OR NEW.destination_id IS NOT OLD.destination_id OR NEW.currency_id IS NOT OLD.currency_id
    BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: post a correcting entry instead'); END""",
    """CREATE TRIGGER ledger_account_owner_fixed BEFORE UPDATE ON ledger_account
    WHEN (NEW.currency_id IS NOT OLD.currency_id OR NEW.code IS NOT OLD.code
          OR NEW.user_id IS NOT OLD.user_id OR NEW.wallet_id IS NOT OLD.wallet_id OR NEW.id IS NOT OLD.id)
      AND EXISTS (SELECT 1 FROM ledger_transaction WHERE source_id = OLD.id OR destination_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'an account with ledger entries keeps its currency, code and owner'); END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS ledger_transaction_no_delete",
    "DROP TRIGGER IF EXISTS ledger_transaction_no_update",
    "DROP TRIGGER IF EXISTS ledger_account_owner_fixed",
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
    dependencies = [("ledger", "0006_deposits_per_wallet_closed_only_credited")]
    operations = [migrations.RunPython(forward, backward)]
