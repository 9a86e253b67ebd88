"""How the scheduler's pages name and time things for a person: a task by its job ("update
confirmations", not "tango-enemy-foxtrot-yankee"), durations with their unit, intervals in
words. ops/scheduler_admin.py's columns call these."""

from django.utils.html import format_html

from .scheduler import registered_jobs

RESULT_LIMIT = 80


def job_name(func: str) -> str:
    """The registered job's name in words ("ledger.update_confirmations" -> "update
    confirmations"); a function no schedule names keeps its dotted path."""
    spec = registered_jobs().get(func)
    if spec is None:
        return func
    return spec["name"].rpartition(".")[2].replace("_", " ")


def seconds(started, stopped) -> str:
    if not started or not stopped:
        return "—"
    return f"{(stopped - started).total_seconds():.2f} s"


def every(schedule) -> str:
    if schedule.schedule_type == "I" and schedule.minutes:
        n = schedule.minutes
        return f"every {n} minute{'s' if n != 1 else ''}"
    return schedule.get_schedule_type_display()


def short(text, limit=RESULT_LIMIT):
    """A result cut to one line, the whole on hover."""
    text = "" if text is None else str(text)
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])
