"""Per-process cache of users' balances: user -> currency code -> account code -> int units.

How it works:
- the first caller for a cold user loads ALL that user's balances in ONE query; callers for the
  same user meanwhile wait on that load's Event (no polling), with a timeout;
- a failed load reaches every waiter, caches nothing, and the next call tries again;
- invalidation (at commit, see balances/signals.py) detaches any load in flight for that user:
  each load is its own generation token, so a load that started before the invalidation can
  still answer its own callers but never writes its older result into memory;
- at most `max_users` users are kept, least recently used dropped first;
- memory is served only before `valid_until`, which the NOTIFY listener pushes forward with each
  answered heartbeat (balances/notify.py), and, in TTL mode (no LISTEN/NOTIFY, e.g. SQLite),
  before each entry's own expiry.
The hot path (a loaded user) takes no lock: CPython's dict/OrderedDict operations and next() on
an itertools.count are atomic under the GIL, and a read racing an invalidation is simply a read
that happened just before it. It does not read the clock either (time.monotonic() was a quarter
of a hit's cost): it tests the `fresh` flag, which a watchdog thread lowers within
`WATCH_PERIOD` of `valid_until` passing, so the staleness bound grows by that period.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.db import connections

from cryptoadmin.errors import CryptoadminError

# LOAD_SQL too is kept importable from here, where its readers know it.
from .loading import ACCOUNT_CODES, LOAD_SQL, load_user_balances  # noqa: F401
from .reference import ReferenceCache

_ACCOUNT_SET = frozenset(ACCOUNT_CODES)
_monotonic = time.monotonic
INF = float("inf")
WATCH_PERIOD = 0.05  # seconds between the watchdog's looks at valid_until


class BalanceCacheError(CryptoadminError, RuntimeError):
    """The cache could not produce a balance."""


class BalanceLoadError(BalanceCacheError):
    """Loading a user's balances failed; nothing was cached and the next call retries."""


class LoadTimeout(BalanceCacheError):
    """Waited too long for another caller's load of the same user."""


class UnknownUser(CryptoadminError, LookupError):
    """No ledger account belongs to this user id."""


class _Entry:
    __slots__ = ("balances", "expires_at")

    def __init__(self, balances, expires_at):
        self.balances = balances
        self.expires_at = expires_at  # None: no expiry of its own (notify or off mode)


class _Load:
    """One load in flight; its identity is the generation the result belongs to."""

    __slots__ = ("done", "result", "error", "stale", "started_at")

    def __init__(self):
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None
        self.stale = False  # set by an invalidation: the result must not be stored
        self.started_at = time.monotonic()


class BalanceCache:
    def __init__(
        self,
        *,
        max_users: int = 10_000,
        wait_timeout: float = 10.0,
        loader=load_user_balances,
        ttl: float | None = None,
    ):
        if max_users < 1:
            raise ValueError("max_users must be at least 1")
        self.max_users = max_users
        self.wait_timeout = wait_timeout
        self.loader = loader
        self.ttl = ttl  # seconds an entry may be served, counted from the start of its load
        # Monotonic time until which memory may be served or stored at all (moved by the listener),
        # and its lock-free shadow for the hot path, lowered by the watchdog once it has passed.
        self._valid_until = INF
        self.fresh = True
        self._watchdog: threading.Thread | None = None
        self._closed = threading.Event()
        self.mode = "off"
        self._hits = itertools.count()
        self._hit_reads, self._hit_reads_lock = 0, threading.Lock()
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, _Load] = {}
        self.get_balance, self.get_user = self._hot_readers()
        # API tokens and currencies, served under the same freshness rules.
        self.reference = ReferenceCache(self)
        # Test hook: called by the loading thread between the query and the store.
        self.after_load_hook = None
        self.misses = self.loads = self.waits = 0
        self.invalidations = self.load_errors = self.evictions = self.discarded_loads = 0
        self.wait_timeouts = self.clears = 0

    # -- validity --------------------------------------------------------------------------------
    @property
    def valid_until(self) -> float:
        return self._valid_until

    @valid_until.setter
    def valid_until(self, value: float) -> None:
        self._valid_until = value
        self.fresh = _monotonic() <= value
        if value != INF and self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch, name="balances-watchdog", daemon=True
            )
            self._watchdog.start()

    def _watch(self) -> None:
        # Sets the flag False only: a heartbeat racing it costs at most one trip to the slow path,
        # which raises the flag again while valid_until has not passed.
        while not self._closed.wait(WATCH_PERIOD):
            if _monotonic() > self._valid_until:
                self.fresh = False

    def close(self) -> None:
        """Stop the watchdog thread (the cache is being dropped)."""
        self._closed.set()

    # -- reads ---------------------------------------------------------------------------------
    def _hot_readers(self):
        """get_balance and get_user as closures over bound methods: a hit is a handful of dict
        operations and one flag, with no lock, no clock (but in TTL mode) and no attribute
        chains."""
        peek, touch, hit = self._entries.get, self._entries.move_to_end, self._hits.__next__
        slow, cache = self._get_user_slow, self

        def get_balance(user_id: str, currency_id: str, account: int) -> int:
            """Balance in base units of the user's `account` in currency `currency_id` (a code
            like "BTC"). 0 for a currency in which the user has no account. UnknownUser if none."""
            entry = peek(user_id)
            if (
                entry is not None
                and cache.fresh
                and (entry.expires_at is None or _monotonic() <= entry.expires_at)
            ):
                try:
                    touch(user_id)
                except KeyError:  # invalidated since the get: this read came just before it
                    pass
                hit()
                balances = entry.balances
            else:
                balances = slow(user_id)
            per_currency = balances.get(currency_id)
            if per_currency is not None:
                # Each loaded currency holds exactly the seven codes.
                try:
                    return per_currency[account]
                except KeyError:
                    pass
            elif account in _ACCOUNT_SET:
                return 0  # no account in that currency yet
            raise ValueError(f"account {account!r} is not one of {ACCOUNT_CODES}")

        def get_user(user_id: str) -> dict[str, dict[int, int]]:
            """Every balance of a user, one consistent snapshot (do not mutate it)."""
            entry = peek(user_id)
            if (
                entry is not None
                and cache.fresh
                and (entry.expires_at is None or _monotonic() <= entry.expires_at)
            ):
                try:
                    touch(user_id)
                except KeyError:
                    pass
                hit()
                return entry.balances
            return slow(user_id)

        return get_balance, get_user

    def _get_user_slow(self, user_id: str) -> dict[str, dict[int, int]]:
        with self._lock:
            now = _monotonic()
            if now <= self._valid_until:
                self.fresh = True  # undo a watchdog look that raced a heartbeat
            entry = self._entries.get(user_id)
            if entry is not None:
                if now <= self._valid_until and (
                    entry.expires_at is None or now <= entry.expires_at
                ):
                    self._entries.move_to_end(user_id)
                    next(self._hits)
                    return entry.balances
                del self._entries[user_id]
            self.misses += 1
            load = self._loading.get(user_id)
            owner = load is None
            if owner:
                load = self._loading[user_id] = _Load()
                self.loads += 1
            else:
                self.waits += 1
        if owner:
            self._run_load(user_id, load)
        elif not load.done.wait(self.wait_timeout):
            with self._lock:
                self.wait_timeouts += 1
            raise LoadTimeout(
                f"gave up after {self.wait_timeout:g} s waiting for the balances of user "
                f"{user_id!r} to load"
            )
        if load.error is not None:
            if isinstance(load.error, UnknownUser):
                raise UnknownUser(str(load.error))
            raise BalanceLoadError(
                f"loading the balances of user {user_id!r} failed: {load.error}"
            ) from load.error
        return load.result

    @property
    def hits(self) -> int:
        # The hot path only advances the counter (atomic, no lock); a read advances it once
        # more, so the hits are the value it returns less the reads made before.
        with self._hit_reads_lock:
            value = next(self._hits) - self._hit_reads
            self._hit_reads += 1
        return value

    def _run_load(self, user_id: str, load: _Load) -> None:
        try:
            result = self.loader(user_id)
            if result is None:
                raise UnknownUser(f"no user with id {user_id!r}")
            load.result = result
            if self.after_load_hook is not None:
                self.after_load_hook(user_id)
        except BaseException as exc:  # every waiter must hear of it, whatever it is
            load.error = exc
        finally:
            with self._lock:
                if self._loading.get(user_id) is load:
                    del self._loading[user_id]
                if load.error is not None:
                    if not isinstance(load.error, UnknownUser):
                        self.load_errors += 1
                elif load.stale or _monotonic() > self.valid_until:
                    # Invalidated (or cross-process sync lost) while loading: answer, don't store.
                    self.discarded_loads += 1
                else:
                    expires = None if self.ttl is None else load.started_at + self.ttl
                    self._entries[user_id] = _Entry(load.result, expires)
                    self._entries.move_to_end(user_id)
                    while len(self._entries) > self.max_users:
                        self._entries.popitem(last=False)
                        self.evictions += 1
            load.done.set()

    # -- invalidation --------------------------------------------------------------------------
    def invalidate(self, user_ids) -> None:
        with self._lock:
            for user_id in user_ids:
                # Counted only when there was something to forget.
                dropped = self._entries.pop(user_id, None) is not None
                load = self._loading.pop(user_id, None)
                if load is not None:
                    load.stale = dropped = True
                self.invalidations += dropped

    def clear(self) -> None:
        """Forget everything, including loads in flight (e.g. the NOTIFY connection dropped)."""
        with self._lock:
            self.clears += 1
            self.reference.clear()
            self._entries.clear()
            for load in self._loading.values():
                load.stale = True
            self._loading.clear()

    # -- figures -------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._lock:
            return {
                "users_cached": len(self._entries),
                "max_users": self.max_users,
                "hits": self.hits,
                "misses": self.misses,
                "loads": self.loads,
                "waits": self.waits,
                "invalidations": self.invalidations,
                "load_errors": self.load_errors,
                "evictions": self.evictions,
                "discarded_loads": self.discarded_loads,
                "wait_timeouts": self.wait_timeouts,
                "clears": self.clears,
                "loading_now": len(self._loading),
            }

    def cached_users(self) -> list[str]:
        with self._lock:
            return list(self._entries)


# -- the process-wide cache ------------------------------------------------------------------
# Sized and timed by settings.BALANCE_CACHE_* (read when the cache is made, so a test's override
# applies to the next reset_cache()).
_singleton_lock = threading.Lock()
_singleton: BalanceCache | None = None
_listener = None
_pid = None


def cross_process_mode(using: str = "default") -> str:
    chosen = settings.BALANCE_CACHE_CROSS_PROCESS
    if chosen in ("notify", "ttl", "off"):
        return chosen
    return "notify" if connections[using].vendor == "postgresql" else "ttl"


def get_cache() -> BalanceCache:
    """The process's cache; (re)created after a fork, with its cross-process policy."""
    global _singleton, _listener, _pid
    cache = _singleton
    if cache is not None and _pid == os.getpid():
        return cache
    with _singleton_lock:
        if _singleton is None or _pid != os.getpid():
            mode = cross_process_mode()
            max_staleness = settings.BALANCE_CACHE_MAX_STALENESS
            cache = BalanceCache(
                max_users=settings.BALANCE_CACHE_MAX_USERS,
                wait_timeout=settings.BALANCE_CACHE_WAIT_TIMEOUT,
            )
            listener = None
            if mode == "notify":
                from .notify import Listener

                listener = Listener(cache, max_staleness=max_staleness)
                listener.start()
            elif mode == "ttl":
                cache.ttl = max_staleness
            cache.mode = mode
            _singleton, _listener, _pid = cache, listener, os.getpid()
        return _singleton


def existing_cache() -> BalanceCache | None:
    return _singleton if _pid == os.getpid() else None


def get_listener():
    get_cache()
    return _listener


def reset_cache() -> None:
    """Drop the process's cache and stop its listener (tests; a settings change)."""
    global _singleton, _listener, _pid
    with _singleton_lock:
        if _listener is not None and _pid == os.getpid():
            _listener.stop()
        if _singleton is not None and _pid == os.getpid():
            _singleton.close()
        _singleton = _listener = _pid = None


def get_balance(user_id: str, currency_id: str, account: int) -> int:
    """A user's balance in int base units, served from this process's memory when loaded."""
    return get_cache().get_balance(user_id, currency_id, account)


def get_user_balances(user_id: str) -> dict[str, dict[int, int]]:
    return get_cache().get_user(user_id)
