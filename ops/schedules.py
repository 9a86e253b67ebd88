SCHEDULES = [
    dict(name="ops.alerts", func="ops.tasks.send_alerts", schedule_type="I", minutes=1, repeats=-1),
]
