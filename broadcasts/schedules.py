# One task iterating the wallets rather than one schedule per wallet: a wallet added later is
# broadcast without re-running migrate, and the per-wallet lock keeps runs independent.
SCHEDULES = [
    dict(
        name="broadcasts.broadcast",
        func="broadcasts.tasks.broadcast_all_wallets",
        schedule_type="I",
        minutes=1,
        repeats=-1,
    ),
]
