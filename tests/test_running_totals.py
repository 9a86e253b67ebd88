"""Running totals per account: kept by the database with every ledger row, exact under two
processes posting at once, read by the books balance, and checked against the rows."""

import subprocess

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from ledger import services
from ledger.models import Account, AccountBalance, Currency, Transaction, Wallet
from tests.support import PYTHON, REPO

ENGINES = ["default", "sqlite"]


def _accounts(using, n=3):
    btc = Currency.objects.using(using).create(code="BTC")
    return btc, [
        Account.objects.using(using).create(currency=btc, user_id=f"u{i}", code=201)
        for i in range(n)
    ]


def _totals(using, accounts):
    got = dict(
        AccountBalance.objects.using(using)
        .filter(account__in=accounts)
        .values_list("account_id", "balance")
    )
    return [got.get(a.pk, 0) for a in accounts]


@pytest.mark.django_db(databases=["default", "sqlite"])
@pytest.mark.parametrize("using", ENGINES)
def test_it_counts_a_bulk_insert_of_many_rows_into_one_account(using):
    """One statement of 20,000 rows into the same accounts (a settlement, an import): each
    total counts every row once. On PostgreSQL the totals are kept per statement: a row
    trigger rewriting one total per row made this quadratic (142 s in a suite run, 1.6 s now)."""
    btc, (a, b, c) = _accounts(using)
    n = 20_000
    Transaction.objects.using(using).bulk_create(
        [
            Transaction(
                currency=btc, source=a, destination=b if i % 2 else c, amount=1, kind="internal"
            )
            for i in range(n)
        ],
        batch_size=n,
    )
    assert _totals(using, [a, b, c]) == [-n, n // 2, n // 2]


@pytest.mark.django_db(databases=["default", "sqlite"])
@pytest.mark.parametrize("using", ENGINES)
def test_it_keeps_each_accounts_total_with_every_ledger_write(using):
    btc, (a, b, c) = _accounts(using)
    if using == "default":
        services.post(a, b, 7, "internal")
        services.post_many(
            [
                Transaction(currency=btc, source=b, destination=c, amount=3, kind="internal"),
                Transaction(currency=btc, source=c, destination=a, amount=10**15, kind="internal"),
            ]
        )
    else:
        for s, d, amount in [(a, b, 7), (b, c, 3), (c, a, 10**15)]:
            Transaction.objects.using(using).create(
                currency=btc, source=s, destination=d, amount=amount, kind="internal"
            )
    assert _totals(using, [a, b, c]) == [10**15 - 7, 4, 3 - 10**15]


@pytest.mark.django_db(databases=["default", "sqlite"])
@pytest.mark.parametrize("using", ENGINES)
def test_it_leaves_the_total_alone_when_the_row_is_refused(using):
    btc, (a, b, _) = _accounts(using)
    Transaction.objects.using(using).create(
        currency=btc, source=a, destination=b, amount=5, kind="internal"
    )
    with pytest.raises(IntegrityError):
        with transaction.atomic(using=using):
            Transaction.objects.using(using).create(
                currency=btc, source=a, destination=b, amount=-5, kind="internal"
            )
    # Append-only still holds: the row cannot be changed or removed behind the total's back.
    row = Transaction.objects.using(using).get()
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(using=using):
            Transaction.objects.using(using).filter(pk=row.pk).update(amount=6)
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(using=using):
            Transaction.objects.using(using).filter(pk=row.pk).delete()
    assert _totals(using, [a, b]) == [-5, 5]


@pytest.mark.django_db
def test_it_reads_balances_and_the_wallets_books_from_the_running_totals():
    btc = Currency.objects.create(code="BTC")
    wallet = Wallet.objects.create(name="w", currency=btc)
    system = services.system_accounts(wallet)
    alice = services.user_account("alice", btc)
    services.post(system[900], alice, 1_000, "deposit")
    assert services.wallet_books_balance(wallet) == 1_000
    # A total changed behind the rows' back shows: the figure is read from the total alone.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_accountbalance SET balance = balance - 1 WHERE account_id = %s",
            [system[900].pk],
        )
    assert services.wallet_books_balance(wallet) == 1_001
    assert services.balances([alice.pk, system[910].pk]) == {alice.pk: 1_000, system[910].pk: 0}
    assert services.balances_from_rows([system[900].pk]) == {system[900].pk: -1_000}


@pytest.mark.django_db
def test_it_sums_all_users_pending_outgoing_from_the_totals():
    btc, (a, b, c) = _accounts("default")
    holds = [services.user_account(u.user_id, btc, 204) for u in (a, b)]
    services.post(a, holds[0], 30, "pending_outgoing")
    services.post(b, holds[1], 12, "pending_outgoing")
    services.post(holds[1], b, 12, "returned")
    assert services.total_of_users(btc.pk, 204) == 30
    assert services.total_of_users(btc.pk, 201) == -30


@pytest.mark.django_db
def test_it_finds_a_planted_difference_with_check_balances(capsys):
    btc, (a, b, _) = _accounts("default")
    services.post(a, b, 40, "internal")
    call_command("check_balances")
    assert "agrees" in capsys.readouterr().out
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_accountbalance SET balance = balance + 3 WHERE account_id = %s", [b.pk]
        )
        # A total for an account with no rows at all is a difference too.
        cursor.execute(
            "INSERT INTO ledger_accountbalance (account_id, currency_id, code, balance) "
            "SELECT id, currency_id, code, 9 FROM ledger_account WHERE user_id = 'u2'"
        )
    with pytest.raises(SystemExit) as exit:
        call_command("check_balances")
    assert exit.value.code == 1
    out = capsys.readouterr()
    assert f"account {b.pk}: rows say 40, running total says 43" in out.out
    assert "rows say 0, running total says 9" in out.out
    assert "2 account(s) differ" in out.err


@pytest.mark.django_db(databases=["default", "sqlite"])
def test_it_checks_balances_on_sqlite_too():
    _, (a, b, _) = _accounts("sqlite")
    Transaction.objects.using("sqlite").create(
        currency_id=a.currency_id, source=a, destination=b, amount=4, kind="internal"
    )
    with connections["sqlite"].cursor() as cursor:
        cursor.execute("UPDATE ledger_accountbalance SET balance = 5 WHERE account_id = %s", [b.pk])
    assert services.balance_differences("sqlite") == [
        {"account_id": b.pk, "from_rows": 4, "running_total": 5}
    ]


CHILD = """
import django, sys
django.setup()
from ledger import services
from ledger.models import Account
a, b = (Account.objects.get(pk=int(x)) for x in sys.argv[1:3])
for i in range(int(sys.argv[3])):
    # Each direction in turn: the two accounts are locked in both orders by the two processes.
    if i % 2:
        services.post(a, b, 3, "internal")
    else:
        services.post(b, a, 1, "internal")
"""


@pytest.mark.django_db(transaction=True)
def test_it_counts_every_post_of_two_processes_posting_at_once(child_env):
    btc, (a, b, _) = _accounts("default")
    n = 300
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", CHILD, str(a.pk), str(b.pk), str(n)],
            cwd=REPO,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert Transaction.objects.count() == 2 * n
    # Per process: n/2 posts of 3 a->b and n/2 of 1 b->a.
    assert _totals("default", [a, b]) == [-2 * n, 2 * n]
    assert services.balance_differences() == []


@pytest.mark.django_db(transaction=True)
def test_it_backfills_the_totals_of_existing_rows_when_migrated():
    executor = MigrationExecutor(connection)
    executor.migrate([("ledger", "0009_network_transaction_amount")])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_currency (code, name, decimals, enabled, crediting_threshold,"
                " polling_threshold, network) VALUES ('BTC', '', 8, true, 3, 6, 'regtest')"
                " RETURNING id"
            )
            (btc,) = cursor.fetchone()
            ids = []
            for user in ("x", "y"):
                cursor.execute(
                    "INSERT INTO ledger_account (currency_id, code, user_id, created_at) "
                    "VALUES (%s, 201, %s, now()) RETURNING id",
                    [btc, user],
                )
                ids.append(cursor.fetchone()[0])
            for s, d, amount in [(0, 1, 50), (1, 0, 8), (0, 1, 1)]:
                cursor.execute(
                    "INSERT INTO ledger_transaction (currency_id, source_id, destination_id, "
                    "amount, kind, label, created_at) "
                    "VALUES (%s, %s, %s, %s, 'internal', '', now())",
                    [btc, ids[s], ids[d], amount],
                )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert dict(AccountBalance.objects.values_list("account_id", "balance")) == {
        ids[0]: -43,
        ids[1]: 43,
    }
    assert services.balance_differences() == []


@pytest.mark.django_db
def test_it_shows_the_dashboards_books_figure_from_the_running_totals():
    from ops import overview
    from tests.support import offline_wallet

    btc = Currency.objects.create(code="BTC")
    wallet = offline_wallet(btc)
    services.post(
        services.system_account(wallet, 910), services.user_account("a", btc), 250, "import"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_accountbalance SET balance = -300 WHERE account_id = %s",
            [services.system_account(wallet, 910).pk],
        )
    (row,) = overview.wallet_rows()
    assert row["books_units"] == 300


@pytest.mark.django_db
def test_it_is_an_invariant_of_the_soak_that_totals_agree_with_the_rows():
    from tests import invariants

    _, (a, b, _) = _accounts("default")
    services.post(a, b, 8, "internal")
    assert invariants.running_totals_agree() == []
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_accountbalance SET balance = 0 WHERE account_id = %s", [a.pk])
    assert invariants.running_totals_agree() == [f"account {a.pk}: running total 0, rows -8"]
