"""The small tables every balances request reads (API tokens, currencies), kept in process beside
the balance cache and invalidated the same way, so a hot request runs no SQL.

- A row is served only while the balance cache may serve memory at all (its `fresh` flag, kept by
  the NOTIFY listener's heartbeats) and, in TTL mode, before the row's own expiry: a revoked token
  is refused in every process within the balance cache's staleness bound.
- PostgreSQL triggers on both tables (migration balances 0003) NOTIFY every committed change,
  whatever wrote it (a queryset update, raw SQL, another program); this process also forgets at
  commit when the change came through a model save (balances/signals.py).
- A token is cached as its whole row (every field, new ones included), read-only: do not mutate
  it. Unknown tokens are not cached (a guessed token costs its query, and memory stays bounded
  by the table).
- Nothing read inside a transaction is served or stored: it may be uncommitted, and a rollback
  sends no notification.
"""

from __future__ import annotations

import threading
import time

from django.db import connections

_monotonic = time.monotonic
TABLES = ("balances_apitoken", "ledger_currency")  # what the triggers name in their payload


class _Row:
    __slots__ = ("value", "expires_at")

    def __init__(self, value, expires_at):
        self.value = value
        self.expires_at = expires_at


class ReferenceCache:
    def __init__(self, owner):
        self.owner = owner  # the BalanceCache: its freshness and TTL rule these rows too
        self._lock = threading.Lock()
        self._tokens: dict[str, _Row] = {}
        self._currencies: _Row | None = None
        self.generation = 0  # bumped by each invalidation: a load that raced one is not stored
        self.loads = self.invalidations = 0

    def _servable(self, row) -> bool:
        return (
            row is not None
            and self.owner.fresh
            and (row.expires_at is None or _monotonic() <= row.expires_at)
            and not connections["default"].in_atomic_block
        )

    def _store(self, generation, started_at, attribute, key, value) -> None:
        """Keep a loaded value unless an invalidation (or lost sync) came since its load began."""
        if connections["default"].in_atomic_block:
            return
        ttl = self.owner.ttl
        row = _Row(value, None if ttl is None else started_at + ttl)
        with self._lock:
            if generation != self.generation or _monotonic() > self.owner.valid_until:
                return
            if key is None:
                setattr(self, attribute, row)
            else:
                getattr(self, attribute)[key] = row

    def token(self, token_hash: str):
        """The ApiToken with this hash (revoked or not), or None."""
        row = self._tokens.get(token_hash)
        if self._servable(row):
            return row.value
        from .models import ApiToken

        generation, started_at = self.generation, _monotonic()
        token = ApiToken.objects.filter(token_hash=token_hash).first()
        self.loads += 1
        if token is not None:
            self._store(generation, started_at, "_tokens", token_hash, token)
        return token

    def currencies(self) -> tuple:
        """Every currency as (code, enabled, decimals), by code."""
        row = self._currencies
        if self._servable(row):
            return row.value
        from ledger.models import Currency

        generation, started_at = self.generation, _monotonic()
        value = tuple(Currency.objects.order_by("code").values_list("code", "enabled", "decimals"))
        self.loads += 1
        self._store(generation, started_at, "_currencies", None, value)
        return value

    def invalidate(self, table: str | None = None) -> None:
        """Forget one table's rows (None: all of them)."""
        with self._lock:
            self.generation += 1
            self.invalidations += 1
            if table in (None, "balances_apitoken"):
                self._tokens = {}
            if table in (None, "ledger_currency"):
                self._currencies = None

    def clear(self) -> None:
        self.invalidate(None)
