"""Ranking metrics over lists of item ids.

``average_precision_at_k`` follows the H&M Personalized Fashion Recommendations competition:
precision at each rank that holds a relevant item, summed and divided by ``min(len(actual), k)``;
a customer with no relevant items is not scored (callers filter them out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Set


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
