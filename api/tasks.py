"""The API's scheduled jobs."""

from . import idempotency


def purge_idempotency_keys() -> str:
    return f"forgot {idempotency.purge()} idempotency keys"
