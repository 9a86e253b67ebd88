# One task per job iterating currencies/wallets, so ones added later are covered
# without re-running migrate.
SCHEDULES = [
    dict(
        name="ledger.update_confirmations",
        func="ledger.tasks.poll_all_currencies",
        schedule_type="I",
        minutes=1,
        repeats=-1,
    ),
    dict(
        name="ledger.rescan_addresses",
        func="ledger.tasks.scheduled_rescan",
        schedule_type="I",
        minutes=60,
        repeats=-1,
    ),
]
