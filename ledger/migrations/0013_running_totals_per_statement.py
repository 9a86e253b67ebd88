"""PostgreSQL keeps the running totals with one statement-level trigger instead of a row-level
one.

The row-level trigger updated an account's total once per ledger row. A bulk insert of many
rows into one account, such as the broadcaster's settlement or an import, then rewrote the same
row version thousands of times in one transaction, which is quadratic: a test of 20,000
one-satoshi rows took 142 s. The statement-level trigger sums the statement's new rows
(the transition table) per account and upserts each account once, in account-id order, so
two concurrent statements lock their accounts in the same order. SQLite has no
statement-level triggers and updates rows in place, so it keeps its row trigger.
"""

import importlib

from django.db import migrations

PG_FORWARD = """
DROP TRIGGER IF EXISTS ledger_transaction_running_totals ON ledger_transaction;
CREATE OR REPLACE FUNCTION ledger_transaction_running_totals() RETURNS trigger AS $$
BEGIN
  INSERT INTO ledger_accountbalance (account_id, currency_id, code, balance)
  SELECT a.id, a.currency_id, a.code, m.delta
  FROM (
    SELECT d.account_id, CAST(SUM(d.amount) AS BIGINT) AS delta
    FROM (
      SELECT destination_id AS account_id, amount FROM new_rows
      UNION ALL
      SELECT source_id, -amount FROM new_rows
    ) d
    GROUP BY d.account_id
  ) m JOIN ledger_account a ON a.id = m.account_id
  ORDER BY a.id
  ON CONFLICT (account_id) DO UPDATE SET balance = ledger_accountbalance.balance + EXCLUDED.balance;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_transaction_running_totals AFTER INSERT ON ledger_transaction
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transaction_running_totals();
DROP FUNCTION IF EXISTS ledger_running_total_add(bigint, bigint);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        previous = importlib.import_module(
            "ledger.migrations.0010_running_totals_and_admin_indexes"
        )
        schema_editor.execute(previous.PG_BACKWARD)
        schema_editor.execute(previous.PG_FORWARD)


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0012_wallet_last_tx_count"),
    ]

    operations = [migrations.RunPython(forward, backward)]
