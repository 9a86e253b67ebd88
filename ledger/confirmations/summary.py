"""What a poll did, in figures: the Summary every entry point returns, and the count of SQL
statements a cycle sends."""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

from django.db import connection

_statements: contextvars.ContextVar = contextvars.ContextVar("poll_statements", default=None)


@dataclass
class Summary:
    checked: int = 0
    changed: int = 0
    credited: int = 0
    closed: int = 0
    failed: int = 0
    discovered: int = 0
    round_trips: int = 0
    statements: int = 0
    # Not a count: a poll cycle read the window of a new tip, which holds every wallet
    # transaction announced with the block (the listener need not ask about them again).
    read_window: bool = field(default=False, compare=False, repr=False, metadata={"counted": False})
    # Not a count: the txids of that window (the listener skips their later announcements).
    window_txids: frozenset = field(
        default=frozenset(), compare=False, repr=False, metadata={"counted": False}
    )

    def counts(self):
        return [f for f in fields(self) if f.metadata.get("counted", True)]

    def __iadd__(self, other: Summary):
        for f in self.counts():
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def __str__(self):
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in self.counts())

    PEOPLE_WORDS = {
        "checked": ("transaction checked", "transactions checked"),
        "changed": ("changed", "changed"),
        "credited": ("deposit credited", "deposits credited"),
        "closed": ("closed", "closed"),
        "failed": ("could not be checked", "could not be checked"),
        "discovered": ("new transaction found", "new transactions found"),
    }

    def for_people(self) -> str:
        """'6 transactions checked, 1 deposit credited': what an operator's message says
        (round trips and statements are the poller's own figures, for logs and benchmarks)."""
        parts = [
            f"{n} {words[0] if n == 1 else words[1]}"
            for name, words in self.PEOPLE_WORDS.items()
            if (n := getattr(self, name)) or name == "checked"
        ]
        return ", ".join(parts)


@contextmanager
def counting_statements():
    """Counts the SQL statements this thread sends meanwhile (bulk writes through the raw
    cursor count themselves with count_statements)."""
    box = [0]
    token = _statements.set(box)

    def wrapper(execute, sql, params, many, context):
        box[0] += 1
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(wrapper):
            yield box
    finally:
        _statements.reset(token)


def count_statements(n: int = 1) -> None:
    box = _statements.get()
    if box is not None:
        box[0] += n
