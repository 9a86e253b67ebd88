"""The operator-pages benchmark's datasets (bench/admin_scale.py, bench/reconcile_profile.py):
a small and a large service built with generate_series in SQL, the ledger's row triggers off
during the bulk load, then the running totals computed once by the same SQL as migration
0010's backfill; the outgoing transactions through the ORM."""

# A deposit's amount in base units, from its row number i (network transaction id - 1).
DEPOSIT_AMOUNT = "100000 + {i} % 1000"

SIZES = {
    # users, ledger rows, network transactions, outgoing, second-currency users
    "small": dict(users=100, ledger=10_000, network=1_000, outgoing=100, ltc_users=40),
    "large": dict(
        users=100_000, ledger=5_000_000, network=1_000_000, outgoing=9_300, ltc_users=40_000
    ),
}

# Wallets 1 (BTC), 2 (LTC), 3 (BTC, a second wallet); system accounts 1..9:
# wallet w, code index k (900, 910, 920) -> (w - 1) * 3 + k + 1. User pair p (a user in a
# currency: p < users is BTC user p, then LTC user p - users), code index k of
# (201, 202, 203, 204, 205, 206, 230) -> account 10 + p * 7 + k; its address id p + 1.


def build_sql(users, ledger, network, ltc_users, **_):
    pairs = users + ltc_users
    cur = f"(CASE WHEN p < {users} THEN 1 ELSE 2 END)"
    uid = f"'user-' || (CASE WHEN p < {users} THEN p ELSE p - {users} END)"
    return (
        _wallets_sql()
        + _people_sql(pairs, cur, uid)
        + _deposits_sql(pairs, cur, network)
        + _ledger_sql(users, pairs, cur, network, ledger)
    )


def _wallets_sql():
    from devtools.bulk import insert_select
    from ledger.models import Currency, Wallet

    return [
        # Columns from the models (devtools.bulk): a column added later gets its default.
        insert_select(
            Currency,
            {
                "id": "v.id",
                "code": "v.code",
                "name": "v.name",
                "decimals": "8",
                "enabled": "true",
                "crediting_threshold": "3",
                "polling_threshold": "6",
                "network": "'regtest'",
            },
            "FROM (VALUES (1, 'BTC', 'Bitcoin'), (2, 'LTC', 'Litecoin')) v(id, code, name)",
        ),
        insert_select(
            Wallet,
            {
                "id": "v.id",
                "name": "v.name",
                "currency_id": "v.cur",
                "backend": "'bitcoind'",
                "enabled": "true",
                "created_at": "now()",
            },
            "FROM (VALUES (1, 'btc-hot', 1), (2, 'ltc-hot', 2), (3, 'btc-cold', 1))"
            " v(id, name, cur)",
        ),
    ]


def _people_sql(pairs, cur, uid):
    return [
        """INSERT INTO ledger_account (id, currency_id, code, user_id, wallet_id, created_at)
           SELECT (w - 1) * 3 + k + 1, CASE w WHEN 2 THEN 2 ELSE 1 END,
                  (ARRAY[900, 910, 920])[k + 1], NULL, w, now()
           FROM generate_series(1, 3) w, generate_series(0, 2) k""",
        f"""INSERT INTO ledger_account (id, currency_id, code, user_id, wallet_id, created_at)
           SELECT 10 + p * 7 + k, {cur}, (ARRAY[201, 202, 203, 204, 205, 206, 230])[k + 1],
                  {uid}, NULL, now() - interval '400 days'
           FROM generate_series(0, {pairs - 1}) p, generate_series(0, 6) k""",
        f"""INSERT INTO ledger_address (id, currency_id, wallet_id, account_id, address, kind,
               label, created_at)
           SELECT p + 1, {cur}, {cur}, 10 + p * 7, 'bcrt1q' || md5('a' || p), 'receiving',
                  {uid}, now() - interval '400 days'
           FROM generate_series(0, {pairs - 1}) p""",
    ]


def _deposits_sql(pairs, cur, network):
    from devtools.bulk import insert_select
    from ledger.models import NetworkTransaction

    credited = f"CASE WHEN i % 100 = 0 THEN NULL ELSE now() - ({network} - i) * interval '29 s' END"
    return [
        # Network transaction i pays pair i % pairs; every 100th is open (not yet credited).
        # Its amount (DEPOSIT_AMOUNT) is the credit's below: the home page sums the open ones.
        insert_select(
            NetworkTransaction,
            {
                "id": "i + 1",
                "currency_id": cur,
                "wallet_id": cur,
                "txid": "md5('t' || i) || md5('u' || i)",
                "type": "'deposit'",
                "state": "CASE WHEN i % 100 = 0 THEN 'open' ELSE 'closed' END",
                "confirmations": "CASE WHEN i % 100 = 0 THEN 1 ELSE 6 END",
                "max_confirmations": "CASE WHEN i % 100 = 0 THEN 1 ELSE 6 END",
                "opened_at": f"now() - ({network} - i) * interval '30 seconds'",
                "closed_at": credited,
                "credited_at": credited,
                "flagged": "i % 100000 = 7",
                "amount": DEPOSIT_AMOUNT.format(i="i"),
            },
            f"FROM (SELECT i, i % {pairs} AS p FROM generate_series(0, {network - 1}) i) g",
        ),
    ]


def _ledger_sql(users, pairs, cur, network, ledger):
    deposits = network - network // 100  # closed ones are credited
    internal = ledger - deposits
    return [
        # A credit per closed deposit: 900 of its wallet -> the pair's 201.
        f"""INSERT INTO ledger_transaction (currency_id, source_id, destination_id, amount, kind,
               network_transaction_id, address_id, label, created_at)
           SELECT {cur}, CASE WHEN p < {users} THEN 1 ELSE 4 END, 10 + p * 7,
                  {DEPOSIT_AMOUNT.format(i="i")}, 'deposit', i + 1, p + 1, '',
                  now() - ({network} - i) * interval '29 seconds'
           FROM (SELECT i, i % {pairs} AS p FROM generate_series(0, {network - 1}) i) g
           WHERE i % 100 <> 0""",
        # Internal moves between a user's own accounts, older first.
        f"""INSERT INTO ledger_transaction (currency_id, source_id, destination_id, amount, kind,
               label, created_at)
           SELECT {cur}, 10 + p * 7 + CASE WHEN j % 2 = 0 THEN 0 ELSE 1 + j % 5 END,
                  10 + p * 7 + CASE WHEN j % 2 = 0 THEN 1 + j % 5 ELSE 0 END,
                  1 + j % 50, 'internal', '', now() - ({internal} - j) * interval '5 seconds'
           FROM (SELECT j, (j::bigint * 7919) % {pairs} AS p
                 FROM generate_series(0, {internal - 1}) j) g""",
    ]


# Caches built before the builder set the deposit rows' amount (open rows of unknown amount
# the home page could only count): patched once, in place, by the same rule.
PATCH_AMOUNTS = (
    "UPDATE ledger_networktransaction SET amount = "
    + DEPOSIT_AMOUNT.format(i="(id - 1)")
    + " WHERE type = 'deposit' AND amount IS NULL"
)


SEQUENCES = [
    ("ledger_currency", "id"),
    ("ledger_wallet", "id"),
    ("ledger_account", "id"),
    ("ledger_address", "id"),
    ("ledger_networktransaction", "id"),
    ("ledger_transaction", "id"),
]


def build(cursor, size):
    spec = SIZES[size]
    # The ledger's row triggers (checks and the running totals) are off for the bulk load only;
    # the rows are consistent by construction and check_balances proves the totals afterwards.
    cursor.execute("SET session_replication_role = replica")
    for sql in build_sql(**spec):
        cursor.execute(sql)
    cursor.execute("SET session_replication_role = DEFAULT")
    backfill = __import__(
        "ledger.migrations.0010_running_totals_and_admin_indexes", fromlist=["BACKFILL"]
    ).BACKFILL
    cursor.execute(backfill)
    for table, column in SEQUENCES:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"(SELECT max({column}) FROM {table}))"
        )


def outgoing(spec):
    """Outgoing transactions through the ORM (the triggers on): queued 201 -> 204, and all
    but 300 sent in broadcasts of 100 (204 -> 900)."""
    from django.db import transaction
    from django.utils import timezone

    from broadcasts.models import OutgoingTransaction

    n, users = spec["outgoing"], spec["users"]
    sent = max(0, n - 300) if n > 300 else n // 2
    with transaction.atomic():
        broadcasts = sent_broadcasts(sent, timezone.now())
        locks = ledger_rows(n, users, sent)
        OutgoingTransaction.objects.bulk_create(
            [
                OutgoingTransaction(
                    wallet_id=1,
                    currency_id=1,
                    account_id=10 + ((o * 13) % users) * 7,
                    hold_account_id=10 + ((o * 13) % users) * 7 + 3,
                    address=f"bcrt1qexternal{o}",
                    amount=1000,
                    state="broadcasted" if o < sent else "queued",
                    broadcast=broadcasts[o // 100] if o < sent else None,
                    lock_entry=lock,
                )
                for o, lock in enumerate(locks)
            ],
            batch_size=2000,
        )


def sent_broadcasts(sent, now):
    """One broadcasted broadcast per 100 sent outgoing."""
    from broadcasts.models import Broadcast

    return Broadcast.objects.bulk_create(
        [
            Broadcast(
                wallet_id=1,
                state="broadcasted",
                label=f"broadcast {b}",
                txid=f"{b:064x}",
                opened_at=now,
                broadcasted_at=now,
                output_count=100,
                transaction_count=100,
                total=100 * 1000,
                fee=500,
            )
            for b in range(-(-sent // 100))
        ]
    )


def ledger_rows(n, users, sent):
    """Each outgoing's lock 201 -> 204, and the first `sent` ones' send 204 -> 900: the locks."""
    from ledger.models import Transaction

    def row(source, destination, kind, label):
        return Transaction(
            currency_id=1,
            source_id=source,
            destination_id=destination,
            amount=1000,
            kind=kind,
            label=label,
        )

    accounts = [10 + ((o * 13) % users) * 7 for o in range(n)]
    locks = [row(a, a + 3, "pending_outgoing", "withdrawal") for a in accounts]
    sends = [row(a + 3, 1, "broadcasted", "sent") for a in accounts[:sent]]
    locks = Transaction.objects.bulk_create(locks, batch_size=2000)
    Transaction.objects.bulk_create(sends, batch_size=2000)
    return locks
