"""Answers to repeated balances queries, kept with what they were computed from.

A reply to the balances query is a function of the request body (the document and its
variables), the user's balance snapshot and the currency rows, nothing else: the caller's
credentials are checked before and change nothing in it. So a reply is kept with the snapshot
and currency rows it was computed from (the objects themselves), and served again while the
caches still hold those very objects: any change to the user's balances or to a currency makes
the caches load new objects, and the kept reply is computed afresh. It is exactly as fresh as the
balance cache (its staleness bound). Only a reply that read exactly one user, without errors,
is kept; at most `size` replies, least recently used dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .cache import BalanceCacheError, get_cache


class _Answer:
    __slots__ = ("user_id", "snapshot", "currencies", "content")

    def __init__(self, user_id, snapshot, currencies, content):
        self.user_id = user_id
        self.snapshot = snapshot
        self.currencies = currencies
        self.content = content


class Answers:
    def __init__(self, size: int):
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Answer] = OrderedDict()
        self.hits = self.misses = 0

    def lookup(self, body: bytes) -> bytes | None:
        """The kept reply to this body if its inputs are still the caches' current ones."""
        answer = self._entries.get(body)
        if answer is None:
            return None
        cache = get_cache()
        try:
            current = (
                cache.reference.currencies() is answer.currencies
                and cache.get_user(answer.user_id) is answer.snapshot
            )
        except BalanceCacheError:
            current = False
        if not current:
            self.misses += 1
            return None
        try:
            self._entries.move_to_end(body)
        except KeyError:  # dropped meanwhile: this lookup came just before
            pass
        self.hits += 1
        return answer.content

    def keep(self, body: bytes, reads: list, content: bytes) -> None:
        """Keep a reply computed from exactly one (user id, snapshot, currency rows) read."""
        if len(reads) != 1 or self.size < 1:
            return
        with self._lock:
            self._entries[body] = _Answer(*reads[0], content)
            self._entries.move_to_end(body)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
