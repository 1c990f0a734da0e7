"""Recently read page-view values, held in the worker and kept correct by Redis itself.

A page view reads one customer's keys (or one session's) from Redis. On a 2-core machine that
read, with the socket calls on both sides, costs about as much CPU as the rest of a
recommendation (benchmarks/RESULTS.md), and shoppers view several pages per visit. So each
worker keeps the raw values it read, and Redis tells it when one changes: the reader's
connection turns on client tracking (``CLIENT TRACKING ON REDIRECT``), and Redis sends the name
of every key that connection read to an invalidation connection when anyone writes, deletes or
expires it (:class:`service.store.pipelined.PipelinedReader` owns both connections).

Contract:

- :meth:`NearCache.get` answers the values of all the keys, or ``None`` (a miss) when one of
  them is not held, is older than ``ttl_s``, or the cache is off. While the invalidation
  connection is down the cache is off and empty (:meth:`NearCache.clear`).
- A value is kept only from a read that started after the current link came up
  (:meth:`NearCache.begin` returns its epoch) and that no invalidation of its key overtook: an
  invalidation can travel on its own connection faster than the reply it concerns, so a key
  invalidated while a read of it is in flight is not kept from that read.
- ``ttl_s`` is a safety net, not the mechanism: a value is dropped when Redis says it changed,
  and at the latest ``ttl_s`` after it was read: each at a random point of the second half of
  that span, so that values read together (a worker's first minute, a burst of traffic) are
  not all read again at the same moment. A read that finds the held value unchanged keeps it
  (the same object, with its memo) and only renews its lifetime.
- At ``capacity`` keys the oldest read is dropped first.
- :meth:`NearCache.memo` hands out a dict shared by the held values of a set of keys (one
  customer's), for what a caller computes from them (a rendered homepage): it is emptied as
  soon as any of those values is dropped - Redis says it changed, it is evicted, or a read
  after its lifetime finds it changed. So while the memo holds something, every value it was
  computed from is still the one held.

Values are the raw bytes (or ``None`` for an absent key), decoded per request as before: a
decoded profile could be changed by one request under another. The entries are ``gc=False``
Structs, so the garbage collector walks none of the up to ``capacity`` entries (nor, with
:mod:`service.kept`'s answers, their memos) in its full collections.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import msgspec

Value = bytes | None


class _Held(msgspec.Struct, gc=False):
    """One key's held value, until when it is fresh, and the memo it shares (or ``None``).
    ``gc=False``: it refers to nothing that could lead back to it."""

    expires: float
    value: Value
    memo: dict | None = None


class NearCache:
    """Raw values of page-view keys; see the module docstring for the contract."""

    def __init__(self, capacity: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        if capacity < 1 or ttl_s <= 0:
            raise ValueError("a near cache needs a capacity of at least 1 and a positive TTL")
        self.capacity, self.ttl_s, self.clock = capacity, ttl_s, clock
        self.enabled = False
        self.epoch = 0
        self.hits = self.misses = 0
        self._values: dict[str, _Held] = {}
        self._pending: dict[str, int] = {}  # key -> reads of it in flight
        self._overtaken: set[str] = set()  # pending keys invalidated since their read began

    def __len__(self) -> int:
        return len(self._values)

    def get(self, keys: Sequence[str]) -> list[Value] | None:
        """The values of ``keys`` in order when every one is held and fresh, else ``None``."""
        if not self.enabled:
            return None
        values = self._values
        now = self.clock()
        found = []
        for key in keys:
            entry = values.get(key)
            if entry is None or entry.expires <= now:
                self.misses += 1
                return None
            found.append(entry.value)
        self.hits += 1
        return found

    def memo(self, keys: Sequence[str], values: Sequence[Value]) -> dict | None:
        """The memo of these keys' held values (created empty when they share none yet), when
        the cache holds exactly these values for ``keys`` now; else ``None``. Neither a hit
        nor a miss. See the module docstring for when it is emptied."""
        if not self.enabled:
            return None
        held, now = self._values, self.clock()
        entries = []
        for key, value in zip(keys, values):
            entry = held.get(key)
            if entry is None or entry.expires <= now or (entry.value is not value
                                                         and entry.value != value):
                return None
            entries.append(entry)
        memo = entries[0].memo
        if memo is None or any(entry.memo is not memo for entry in entries):
            memo = {}
            for entry in entries:
                _drop_memo(entry)
                entry.memo = memo
        return memo

    def begin(self, keys: Sequence[str]) -> int:
        """A read of ``keys`` is about to be sent; returns the epoch to hand to :meth:`fill`."""
        pending = self._pending
        for key in keys:
            pending[key] = pending.get(key, 0) + 1
        return self.epoch

    def fill(self, keys: Sequence[str], values: Sequence[Value] | None, epoch: int) -> None:
        """The read begun at ``epoch`` answered ``values`` (``None``: it failed); keep what
        is still known to be current."""
        pending, overtaken, held = self._pending, self._overtaken, self._values
        keep = values is not None and self.enabled and epoch == self.epoch
        expires = self.clock() + self.ttl_s * (1.0 - 0.5 * random.random())
        for i, key in enumerate(keys):
            left = pending.get(key, 1) - 1
            if left > 0:
                pending[key] = left
            else:
                pending.pop(key, None)
            if key in overtaken:
                if left <= 0:
                    overtaken.discard(key)
                continue
            if keep:
                # re-inserted last: the eviction order is the read order
                entry = held.pop(key, None)
                if entry is not None and entry.value == values[i]:
                    entry.expires = expires  # unchanged: the same value and memo, renewed
                else:
                    if entry is not None:
                        _drop_memo(entry)
                    elif len(held) >= self.capacity:
                        _drop_memo(held.pop(next(iter(held))))
                    entry = _Held(expires, values[i])
                held[key] = entry

    def invalidate(self, keys: Sequence[str]) -> None:
        """``keys`` changed: drop them, and keep no read of them that is in flight."""
        held, pending, overtaken = self._values, self._pending, self._overtaken
        for key in keys:
            entry = held.pop(key, None)
            if entry is not None:
                _drop_memo(entry)
            if key in pending:
                overtaken.add(key)

    def clear(self) -> None:
        """Drop everything, and keep nothing from reads begun before now."""
        for entry in self._values.values():
            _drop_memo(entry)
        self._values.clear()
        self._overtaken.clear()
        self.epoch += 1

    def take_counts(self) -> tuple[int, int]:
        """Hits and misses since the last call (for the metrics)."""
        counts = self.hits, self.misses
        self.hits = self.misses = 0
        return counts


def _drop_memo(entry: _Held) -> None:
    """Empty the memo an entry shares (every value it was computed from goes with it)."""
    memo = entry.memo
    if memo is not None:
        memo.clear()
        entry.memo = None
