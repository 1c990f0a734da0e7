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


def _row_scale(block: np.ndarray) -> np.ndarray:
    top = block.max(axis=1, keepdims=True)
    return np.divide(block, top, out=np.zeros_like(block), where=top > 0)


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
    sim_cols = similarity[:, cols].tocsr()
    item_f = np.ascontiguousarray(item_factors[cols])
    pop_cols = popularity[:, cols]
    sold_cols = sold_in[:, cols]
    chunk = max(64, min(config.chunk_users, int(2e7 // max(cols.size, 1))))
    w_knn, w_als, w_pop = config.weight_itemknn, config.weight_als, config.weight_popularity

    for start in range(0, n_users, chunk):
        users = np.arange(start, min(start + chunk, n_users))
        knn = _row_scale(np.asarray((weights[users] @ sim_cols).todense(), dtype=np.float32))
        als = user_factors[users] @ item_f.T
        np.maximum(als, 0, out=als)
        als = _row_scale(als)
        rows = user_market[users] + 1  # -1 (unknown) -> row 0 (overall)
        pop = _row_scale(pop_cols[rows])
        parts = np.stack([w_knn * knn, w_als * als, w_pop * pop])
        total = parts.sum(axis=0)
        excluded = np.asarray(bought[users][:, cols].todense() > 0) | ~sold_cols[rows]
        total[excluded] = -np.inf
        top = np.argpartition(-total, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(total, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        source = np.take_along_axis(parts.argmax(axis=0), top, axis=1).astype(np.uint8)
        items = cols[top]
        invalid = ~np.isfinite(top_scores) | (top_scores <= 0)
        items[invalid] = -1
        top_scores[invalid] = 0.0
        yield CandidateBlock(users=users, items=items, scores=top_scores.astype(np.float32),
                             sources=source)
