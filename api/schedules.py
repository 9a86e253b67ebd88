SCHEDULES = [
    dict(
        name="api.purge_idempotency_keys",
        func="api.tasks.purge_idempotency_keys",
        schedule_type="I",
        minutes=60,
        repeats=-1,
    ),
]
