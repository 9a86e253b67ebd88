"""Counts in what people read: "1 broadcast", "2 broadcasts", never "1 broadcast(s)"."""


def count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def verb(n: int, singular: str, plural: str) -> str:
    """The verb agreeing with a count: verb(1, "needs", "need") -> "needs"."""
    return singular if n == 1 else plural
