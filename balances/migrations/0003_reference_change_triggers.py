"""Every committed change to the API tokens or the currencies NOTIFYs the balance caches'
channel (PostgreSQL), whatever wrote it, so each process forgets its copy (balances/reference.py).
A token's last-use stamp alone notifies nothing: it changes once a minute per token and process.
SQLite has no NOTIFY: there, cached rows expire after BALANCE_CACHE_MAX_STALENESS."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION balances_reference_changed() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'balances_apitoken'
     AND (to_jsonb(OLD) - 'last_used_at') = (to_jsonb(NEW) - 'last_used_at') THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('balances_changed', json_build_object('t', TG_TABLE_NAME)::text);
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER balances_apitoken_changed AFTER INSERT OR UPDATE OR DELETE ON balances_apitoken
  FOR EACH ROW EXECUTE FUNCTION balances_reference_changed();
CREATE TRIGGER balances_apitoken_truncated AFTER TRUNCATE ON balances_apitoken
  FOR EACH STATEMENT EXECUTE FUNCTION balances_reference_changed();
CREATE TRIGGER ledger_currency_changed AFTER INSERT OR UPDATE OR DELETE ON ledger_currency
  FOR EACH ROW EXECUTE FUNCTION balances_reference_changed();
CREATE TRIGGER ledger_currency_truncated AFTER TRUNCATE ON ledger_currency
  FOR EACH STATEMENT EXECUTE FUNCTION balances_reference_changed();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS balances_apitoken_changed ON balances_apitoken;
DROP TRIGGER IF EXISTS balances_apitoken_truncated ON balances_apitoken;
DROP TRIGGER IF EXISTS ledger_currency_changed ON ledger_currency;
DROP TRIGGER IF EXISTS ledger_currency_truncated ON ledger_currency;
DROP FUNCTION IF EXISTS balances_reference_changed();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("balances", "0002_apitoken_scopes"), ("ledger", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
