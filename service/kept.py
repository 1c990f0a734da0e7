"""Answers kept per customer, in the memo of the values they were built from.

A page-view answer that is a function of the bundle, the customer's stored values, the query and
(for the homepage, through the session window) the time up to a known moment can be answered
again without building it while none of these changed. The profile store hands out a memo with
values it knows to be current (:meth:`service.store.near_cache.NearCache.memo`), emptied as soon
as Redis says one of the customer's values changed, or one leaves the near cache; an answer kept
there is current for as long as the memo holds it, provided the bundle and the time still fit,
which :func:`recall` checks.

Each kind of answer (``"homepage"``, ``"recommendations"``) keeps one query variant per customer,
the latest: a worker's memory is bounded by the near cache's size, not by what requests ask for.
An id the store knows nothing of keeps nothing (its answer is the market's, for anyone).

What is kept is never walked by the garbage collector: :class:`Kept` and the answers are
``gc=False`` Structs of strings, numbers, flat tuples of those and encoded JSON (and the weak
reference to the bundle, one per bundle), so the memo that holds them is not tracked either
(``tests/test_recommendations_kept.py`` checks it). An answer kept here must never hold a list,
a dict or another mutable container. A full collection walks every tracked object, and a worker
keeps answers for every customer in its near cache: with the answers tracked, a full collection
took 103-117 ms with 20,000 customers' answers kept (benchmarks/kept_pages_memory.py,
RESULTS.md), and a worker whose near cache fills with new customers runs one every few thousand
of them.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Hashable
from typing import Any

import msgspec

from artifacts.catalog import Catalog
from service.store.base import RawUser


class Kept(msgspec.Struct, gc=False):
    """One answer as sent, for its bundle (held weakly: a kept answer does not keep a
    swapped-out bundle alive), query variant, and until ``until`` (epoch seconds).
    ``gc=False``: it refers to nothing that could lead back to it (see the module docstring)."""

    catalog: weakref.ref
    variant: Hashable
    until: float
    answer: Any


def recall(raw: RawUser | None, kind: str, catalog: Catalog, variant: Hashable,
           now: float = -math.inf) -> Any | None:
    """The ``kind`` answer kept with the customer's values ``raw`` (as read; ``None``: the store
    did not answer) for this bundle and variant, if it still holds at ``now``; else ``None``."""
    memo = raw.memo if raw is not None else None
    if memo is None:
        return None
    kept = memo.get(kind)
    if kept is None or kept.variant != variant or kept.catalog() is not catalog \
            or now >= kept.until:
        return None
    return kept.answer


def keep(raw: RawUser | None, kind: str, catalog: Catalog, variant: Hashable, answer: Any,
         until: float = math.inf) -> None:
    """Keep ``answer``, built from the customer's values ``raw``, as their ``kind`` answer
    (replacing the one kept before); nothing when every value is absent (an unknown id: its
    memo is emptied, so nothing is kept per made-up id) or the store keeps no memo."""
    if raw is None or raw.memo is None:
        return
    if all(value is None for value in raw.values):
        raw.memo.clear()
        return
    raw.memo[kind] = Kept(weakref.ref(catalog), variant, until, answer)


def forget(raw: RawUser | None, kind: str) -> None:
    """Drop the customer's kept ``kind`` answer (the new one is not to be kept)."""
    if raw is not None and raw.memo is not None:
        raw.memo.pop(kind, None)
