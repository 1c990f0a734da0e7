"""Precomputed "for you" candidates per customer: the blend the service serves.

For every customer with history, three sources are scored over the active catalogue in
vectorised blocks of users:

* ``also_bought`` - item-to-item similarity summed over the customer's (time-decayed) purchases;
* ``personal``    - ALS user x item factors;
* ``popular``     - recent popularity in the customer's market.

Each source is scaled to [0, 1] per customer, the scaled scores are blended with the configured
weights, items the customer bought or that are not sold in their market are removed, and the top
``config.candidates`` are kept with the source that contributed most to each. The service then
answers a page view with a lookup and a filter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.config import TrainConfig

SOURCES = ("also_bought", "personal", "popular")


@dataclass
class CandidateBlock:
    users: np.ndarray  # int64 user indices of this block
    items: np.ndarray  # int32 (len(users), k) item indices, -1 padded, best first
    scores: np.ndarray  # float32 (len(users), k)
    sources: np.ndarray  # uint8 (len(users), k) index into SOURCES


def _scale_rows(block: np.ndarray) -> np.ndarray:
    """Scale each row to a maximum of 1 in place (rows without a positive value stay as-is)."""
    top = block.max(axis=1, keepdims=True)
    np.divide(1.0, top, out=top, where=top > 0)
    top[top <= 0] = 0.0
    block *= top
    return block


def score_candidates(
    *,
    weights: sp.csr_matrix,
    bought: sp.csr_matrix,
    similarity: sp.csr_matrix,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    popularity: np.ndarray,
    sold_in: np.ndarray,
    user_market: np.ndarray,
    active: np.ndarray,
    config: TrainConfig,
) -> Iterator[CandidateBlock]:
    """Yield candidate blocks covering every user, in user order.

    ``weights`` and ``bought`` are (users x items); ``popularity`` and ``sold_in`` have one row
    overall plus one per market; ``user_market`` is -1 where unknown; ``active`` marks items
    that may be recommended at all.
    """
    cols = np.flatnonzero(active).astype(np.int32)
    n_users = weights.shape[0]
    k = min(config.candidates, cols.size)
    if k == 0:
        raise ValueError("no active items to recommend: check active_days and in_stock")
    position = np.full(weights.shape[1], -1, dtype=np.int64)  # item index -> column
    position[cols] = np.arange(cols.size)
    sim_cols = similarity[:, cols].tocsr().astype(np.float32)
    item_f = np.ascontiguousarray(item_factors[cols], dtype=np.float32)
    pop_cols = _scale_rows(np.ascontiguousarray(popularity[:, cols], dtype=np.float32))
    sold_cols = np.ascontiguousarray(sold_in[:, cols])
    restricted = not sold_cols.all()
    chunk = max(64, min(config.chunk_users, int(2e7 // max(cols.size, 1))))
    w_knn, w_als, w_pop = (np.float32(config.weight_itemknn), np.float32(config.weight_als),
                           np.float32(config.weight_popularity))

    for start in range(0, n_users, chunk):
        users = np.arange(start, min(start + chunk, n_users))
        rows = user_market[users] + 1  # -1 (unknown) -> row 0 (overall)
        knn = _scale_rows((weights[users] @ sim_cols).toarray())
        als = user_factors[users] @ item_f.T
        np.maximum(als, 0, out=als)
        _scale_rows(als)
        pop = pop_cols[rows]
        knn *= w_knn
        als *= w_als
        pop *= w_pop
        total = knn + als
        total += pop
        # exclusions: what each customer bought, and what is not sold in their market
        sub = bought[users].tocoo()
        pos = position[sub.col]
        total[sub.row[pos >= 0], pos[pos >= 0]] = -np.inf
        if restricted:
            total[~sold_cols[rows]] = -np.inf
        top = np.argpartition(-total, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(total, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        parts = np.stack([np.take_along_axis(part, top, axis=1) for part in (knn, als, pop)])
        source = parts.argmax(axis=0).astype(np.uint8)
        items = cols[top]
        invalid = ~np.isfinite(top_scores) | (top_scores <= 0)
        items[invalid] = -1
        top_scores[invalid] = 0.0
        yield CandidateBlock(users=users, items=items, scores=top_scores.astype(np.float32),
                             sources=source)
