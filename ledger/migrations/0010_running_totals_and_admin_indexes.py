"""Running totals per account (ledger_accountbalance), kept by a database trigger, and the
indexes the operator's pages read at a million rows.

Why a trigger rather than ledger.services.post: it runs in the statement that inserts the
ledger row, so the total moves in the same transaction whoever writes (post, post_many's
bulk INSERT, a data repair in SQL), and it is an atomic `balance = balance + amount` on one
row, so two posts racing on one account from two processes both count. The two accounts of
a row are updated lower id first, so two rows between the same accounts lock them in one
order. The append-only triggers of 0002/0007 still refuse UPDATE and DELETE of ledger rows:
an INSERT is the only way a total changes, and this trigger counts every INSERT.

Existing rows are counted once here (the backfill), in the same migration that creates the
trigger, so the totals start exact.
"""

import django.db.models.deletion
from django.db import migrations, models

# The totals of every account from the rows, written once (the trigger keeps them after).
BACKFILL = """
INSERT INTO ledger_accountbalance (account_id, currency_id, code, balance)
SELECT a.id, a.currency_id, a.code, CAST(SUM(m.amount) AS BIGINT)
FROM (
  SELECT destination_id AS account_id, amount FROM ledger_transaction
  UNION ALL
  SELECT source_id, -amount FROM ledger_transaction
) m JOIN ledger_account a ON a.id = m.account_id
GROUP BY a.id, a.currency_id, a.code
"""

# One statement per account of the row; the copy of currency and code comes from the account.
PG_FORWARD = """
CREATE OR REPLACE FUNCTION ledger_running_total_add(account bigint, delta bigint) RETURNS void AS $$
  INSERT INTO ledger_accountbalance (account_id, currency_id, code, balance)
  SELECT id, currency_id, code, delta FROM ledger_account WHERE id = account
  ON CONFLICT (account_id) DO UPDATE SET balance = ledger_accountbalance.balance + EXCLUDED.balance;
$$ LANGUAGE sql;
CREATE OR REPLACE FUNCTION ledger_transaction_running_totals() RETURNS trigger AS $$
BEGIN
  IF NEW.source_id < NEW.destination_id THEN
    PERFORM ledger_running_total_add(NEW.source_id, -NEW.amount);
    PERFORM ledger_running_total_add(NEW.destination_id, NEW.amount);
  ELSE
    PERFORM ledger_running_total_add(NEW.destination_id, NEW.amount);
    PERFORM ledger_running_total_add(NEW.source_id, -NEW.amount);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_transaction_running_totals AFTER INSERT ON ledger_transaction
  FOR EACH ROW EXECUTE FUNCTION ledger_transaction_running_totals();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS ledger_transaction_running_totals ON ledger_transaction;
DROP FUNCTION IF EXISTS ledger_transaction_running_totals();
DROP FUNCTION IF EXISTS ledger_running_total_add(bigint, bigint);
"""

# SQLite runs one writer at a time: the order of the two upserts does not matter there.
SQLITE_UPSERT = """INSERT INTO ledger_accountbalance (account_id, currency_id, code, balance)
    SELECT id, currency_id, code, {delta} FROM ledger_account WHERE id = NEW.{column}
    ON CONFLICT (account_id) DO UPDATE SET balance = balance + excluded.balance;"""
SQLITE_FORWARD = [
    "CREATE TRIGGER ledger_transaction_running_totals AFTER INSERT ON ledger_transaction BEGIN "
    + SQLITE_UPSERT.format(delta="-NEW.amount", column="source_id")
    + SQLITE_UPSERT.format(delta="NEW.amount", column="destination_id")
    + " END"
]
SQLITE_BACKWARD = ["DROP TRIGGER IF EXISTS ledger_transaction_running_totals"]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(BACKFILL + ";" + PG_FORWARD)
    elif vendor == "sqlite":
        schema_editor.execute(BACKFILL)
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError(
            f"ledger triggers are written for PostgreSQL and SQLite, not {vendor}"
        )


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in [PG_BACKWARD] if vendor == "postgresql" else SQLITE_BACKWARD:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0009_network_transaction_amount"),
    ]

    operations = [
        migrations.CreateModel(
            name="AccountBalance",
            fields=[
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="running_total",
                        serialize=False,
                        to="ledger.account",
                    ),
                ),
                ("code", models.PositiveIntegerField()),
                ("balance", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.AddIndex(
            model_name="address",
            index=models.Index(fields=["address"], name="address_address_idx"),
        ),
        migrations.AddIndex(
            model_name="networktransaction",
            index=models.Index(fields=["txid"], name="network_tx_txid_idx"),
        ),
        migrations.AddIndex(
            model_name="networktransaction",
            index=models.Index(fields=["opened_at", "id"], name="network_tx_opened_idx"),
        ),
        migrations.AddIndex(
            model_name="networktransaction",
            index=models.Index(
                condition=models.Q(("flagged", True)), fields=["id"], name="network_tx_flagged_idx"
            ),
        ),
        migrations.AddField(
            model_name="accountbalance",
            name="currency",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="ledger.currency"
            ),
        ),
        migrations.AddIndex(
            model_name="accountbalance",
            index=models.Index(
                condition=models.Q(("balance", 0), _negated=True),
                fields=["currency", "code", "balance"],
                name="account_balance_nonzero_idx",
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
