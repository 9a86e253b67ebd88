"""Bookkeeping operations. Each is atomic and takes ids or model instances."""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.db.models import Sum

from cryptoadmin.errors import CryptoadminError

from . import actors, outbox
from .models import Account, AccountBalance, Address, Currency, Transaction, Wallet
from .signals import accounts_changed


class LedgerError(CryptoadminError, ValueError):
    """A bookkeeping request that breaks a rule; nothing was written."""


def user_accounts(user_id: str, currency: Currency) -> dict[int, Account]:
    """All seven accounts of a user in a currency, created on first use."""
    if not user_id or not str(user_id).strip():
        raise LedgerError("a user id is required")
    existing = {a.code: a for a in Account.objects.filter(user_id=user_id, currency=currency)}
    missing = [c for c in Account.USER_CODES if c not in existing]
    if missing:
        Account.objects.bulk_create(
            [Account(user_id=user_id, currency=currency, code=c) for c in missing],
            ignore_conflicts=True,
        )
        existing = {a.code: a for a in Account.objects.filter(user_id=user_id, currency=currency)}
    return existing


def user_account(user_id: str, currency: Currency, code: int = Account.Code.BALANCE) -> Account:
    return user_accounts(user_id, currency)[code]


def system_accounts(wallet: Wallet) -> dict[int, Account]:
    """The wallet's network, import and fees accounts, created on first use."""
    existing = {a.code: a for a in Account.objects.filter(wallet=wallet)}
    missing = [c for c in Account.SYSTEM_CODES if c not in existing]
    if missing:
        Account.objects.bulk_create(
            [Account(wallet=wallet, currency_id=wallet.currency_id, code=c) for c in missing],
            ignore_conflicts=True,
        )
        existing = {a.code: a for a in Account.objects.filter(wallet=wallet)}
    return existing


def system_account(wallet: Wallet, code: int) -> Account:
    return system_accounts(wallet)[code]


def post(source: Account, destination: Account, amount: int, kind: str, **fields) -> Transaction:
    """Append one double-entry row. The database backs every check made here."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise LedgerError(f"amount must be integer base units, got {type(amount).__name__}")
    if amount <= 0:
        raise LedgerError("the amount must be greater than zero")
    if source.pk == destination.pk:
        raise LedgerError("source and destination are the same account")
    if source.currency_id != destination.currency_id:
        raise LedgerError("both accounts must be of the same currency")
    row = Transaction.objects.create(
        currency_id=source.currency_id,
        source=source,
        destination=destination,
        amount=amount,
        kind=kind,
        **fields,
    )
    accounts_changed.send(
        sender=Transaction, account_ids={source.pk, destination.pk}, using="default"
    )
    return row


def post_many(rows: list[Transaction]) -> list[Transaction]:
    """Append many rows in one INSERT (unsaved Transaction instances with ids set).

    Same rules as post(); the database refuses what slips through."""
    for row in rows:
        if not isinstance(row.amount, int) or isinstance(row.amount, bool) or row.amount <= 0:
            raise LedgerError(f"amount must be positive integer base units, got {row.amount!r}")
        if row.source_id == row.destination_id:
            raise LedgerError("source and destination are the same account")
    created = Transaction.objects.bulk_create(rows, batch_size=2000)
    ids = {r.source_id for r in rows} | {r.destination_id for r in rows}
    if ids:
        accounts_changed.send(sender=Transaction, account_ids=ids, using="default")
    return created


def balances(account_ids) -> dict[int, int]:
    """account id -> balance in base units (credits minus debits), one indexed query.

    Reads the running totals (AccountBalance, kept by the database with every ledger row):
    the cost does not grow with the accounts' history. `balances_from_rows` is the same
    figure summed from the rows, for checking (manage.py check_balances)."""
    ids = list(account_ids)
    result = {i: 0 for i in ids}
    result.update(
        AccountBalance.objects.filter(account_id__in=ids).values_list("account_id", "balance")
    )
    return result


def balances_from_rows(account_ids) -> dict[int, int]:
    """account id -> credits minus debits summed over its ledger rows, two grouped queries."""
    ids = list(account_ids)
    result = defaultdict(int, {i: 0 for i in ids})
    for row in (
        Transaction.objects.filter(destination_id__in=ids)
        .values("destination_id")
        .annotate(s=Sum("amount"))
    ):
        result[row["destination_id"]] += row["s"]
    for row in (
        Transaction.objects.filter(source_id__in=ids).values("source_id").annotate(s=Sum("amount"))
    ):
        result[row["source_id"]] -= row["s"]
    return dict(result)


def total_of_users(currency_id: int, code: int) -> int:
    """All users' balances of one account code in a currency (e.g. 204: queued withdrawals),
    from the running totals of the accounts holding something (an index, not every user)."""
    total = (
        AccountBalance.objects.filter(currency_id=currency_id, code=code)
        .exclude(balance=0)
        .aggregate(s=Sum("balance"))["s"]
    )
    return total or 0


def balance_differences(using: str = "default") -> list[dict]:
    """Every account whose running total differs from the sum of its ledger rows (one query
    over all rows: the check behind manage.py check_balances)."""
    from django.db import connections

    sql = """
    WITH moves AS (
      SELECT destination_id AS account_id, SUM(amount) AS s FROM ledger_transaction
      GROUP BY destination_id
      UNION ALL
      SELECT source_id, -SUM(amount) FROM ledger_transaction GROUP BY source_id
    ), from_rows AS (
      SELECT account_id, CAST(SUM(s) AS BIGINT) AS s FROM moves GROUP BY account_id
    )
    SELECT COALESCE(r.account_id, b.account_id), COALESCE(r.s, 0), COALESCE(b.balance, 0)
    FROM from_rows r FULL OUTER JOIN ledger_accountbalance b ON b.account_id = r.account_id
    WHERE COALESCE(r.s, 0) <> COALESCE(b.balance, 0)
    ORDER BY 1
    """
    with connections[using].cursor() as cursor:
        cursor.execute(sql)
        return [
            {"account_id": a, "from_rows": rows, "running_total": total}
            for a, rows, total in cursor.fetchall()
        ]


def balance(account: Account) -> int:
    return balances([account.pk])[account.pk]


def wallet_books_balance(wallet: Wallet) -> int:
    """What the books say the wallet holds on chain.

    Coins enter the wallet only from the network and import accounts, and leave only to
    the network, so holdings = -(network + import). Queued outgoing amounts sit on users'
    204 accounts and so still count as held until broadcast.
    """
    accounts = system_accounts(wallet)
    b = balances([accounts[Account.Code.NETWORK].pk, accounts[Account.Code.IMPORT].pk])
    return -sum(b.values())


def new_receiving_address(
    wallet: Wallet, user_id: str, label: str = "", *, timeout=None, by=None
) -> Address:
    """Ask the node for a fresh address and give it to the user's balance account (201),
    reporting `address.created` (and, with `by`, an admin history entry). Nothing is recorded
    when the node fails."""
    if not user_id or not str(user_id).strip():
        raise LedgerError("a user id is required")
    label = label or f"user:{user_id}"
    # The node call comes first, outside any database transaction: an unused address costs
    # nothing, and a node that is down leaves no trace in the books.
    address = wallet.get_backend(timeout=timeout).new_address(label)
    with transaction.atomic():
        account = user_account(user_id, wallet.currency, Account.Code.BALANCE)
        row = Address.objects.create(
            currency_id=wallet.currency_id,
            wallet=wallet,
            account=account,
            address=address,
            kind=Address.Kind.RECEIVING,
            label=label,
        )
        outbox.emit("address.created", "address", row.address, address_data(row, user_id))
        actors.log_action(by, row, f"Created for user {user_id}", added=True)
    return row


def address_data(row: Address, user_id: str) -> dict:
    """A receiving address in the API's vocabulary (its reply and its event)."""
    return {
        "address": row.address,
        "currency": row.wallet.currency.code,
        "user": user_id,
        "wallet": row.wallet.name,
        "label": row.label,
        "created_at": row.created_at.isoformat(),
    }
