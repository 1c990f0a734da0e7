"""Ranking metrics over lists of item ids.

``average_precision_at_k`` follows the H&M Personalized Fashion Recommendations competition:
precision at each rank that holds a relevant item, summed and divided by ``min(len(actual), k)``;
a customer with no relevant items is not scored (callers filter them out).
``recall_at_k`` divides the relevant items in the top ``k`` by all relevant items;
``ndcg_at_k`` uses binary gains and the ideal ranking of ``min(len(actual), k)`` hits;
``coverage`` is the share of a catalogue that appears in at least one top-``k`` list.
Duplicates in a list count once, at their first rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import NamedTuple


def average_precision_at_k(predicted: Sequence[str], actual: Set[str], k: int = 12) -> float:
    if not actual:
        raise ValueError("average precision needs at least one relevant item")
    hits = 0
    total = 0.0
    seen: set[str] = set()
    for rank, item in enumerate(predicted[:k], start=1):
        if item in actual and item not in seen:
            hits += 1
            total += hits / rank
        seen.add(item)
    return total / min(len(actual), k)


def recall_at_k(predicted: Sequence[str], actual: Set[str], k: int) -> float:
    if not actual:
        raise ValueError("recall needs at least one relevant item")
    return len(set(predicted[:k]) & actual) / len(actual)


def ndcg_at_k(predicted: Sequence[str], actual: Set[str], k: int) -> float:
    if not actual:
        raise ValueError("NDCG needs at least one relevant item")
    seen: set[str] = set()
    dcg = 0.0
    for rank, item in enumerate(predicted[:k]):
        if item in actual and item not in seen:
            dcg += 1.0 / math.log2(rank + 2)
        seen.add(item)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(actual), k)))
    return dcg / ideal


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def coverage(lists: Iterable[Sequence[str]], k: int, catalogue_size: int) -> float:
    """Share of ``catalogue_size`` items that appear in at least one top-``k`` list."""
    if catalogue_size <= 0:
        raise ValueError("coverage needs a positive catalogue size")
    shown: set[str] = set()
    for predicted in lists:
        shown.update(predicted[:k])
    return len(shown) / catalogue_size


class Figures(NamedTuple):
    """Means over one group of customers (each with at least one relevant item)."""

    customers: int
    map12: float
    recall: float
    ndcg: float
    coverage: float
    personal: float


def figures(lists: Mapping[str, Sequence[str]], actual: Mapping[str, Set[str]],
            users: Sequence[str], k: int, catalogue_size: int,
            personal: Set[str] = frozenset()) -> Figures:
    """MAP@12 (always at 12, the competition's cut-off), recall@k, NDCG@k and coverage@k of
    ``lists`` over ``users``; ``personal`` is the share of ``users`` in ``personal`` (those the
    model answered itself). An empty group gives zeros."""
    if not users:
        return Figures(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return Figures(
        customers=len(users),
        map12=mean([average_precision_at_k(lists[u], actual[u], 12) for u in users]),
        recall=mean([recall_at_k(lists[u], actual[u], k) for u in users]),
        ndcg=mean([ndcg_at_k(lists[u], actual[u], k) for u in users]),
        coverage=coverage((lists[u] for u in users), k, catalogue_size),
        personal=sum(1 for u in users if u in personal) / len(users),
    )
