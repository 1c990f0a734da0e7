"""Precomputed "for you" candidates per customer: the blend the service serves.

For every customer with history, five sources are scored over the active catalogue in
vectorised blocks of users:

* ``buy_again``   - repurchasable items the customer bought: item repurchase rate x decayed
  purchase count (:mod:`training.models.repurchase`);
* ``also_bought`` - item-to-item co-purchase similarity summed over the customer's
  (time-decayed) purchases;
* ``variant``     - other variants (colours, cuts) of products the customer bought;
* ``personal``    - ALS user x item factors;
* ``popular``     - recent popularity in the customer's market.

Each personal source is scaled to [0, 1] per customer and popularity to [0, 1] overall; the
personal ones (item-item, variants, ALS) are multiplied by ``n / (n + history_shrink)`` for a
customer with ``n`` purchases, so short histories lean on popularity and buy-again. The blend is

    weight_repurchase * buy_again + trust * (weight_itemknn * also_bought
        + weight_variant * variant + weight_als * personal) + weight_popularity * popular

Items the customer bought that are not repurchasable, and items not sold in their market, are
removed; the top ``config.candidates`` are kept with the source that contributed most to each
(``buy_again`` for every item the customer bought before).
The service then answers a page view with a lookup and a filter (artifacts/ranking.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.config import TrainConfig

SOURCES = ("also_bought", "personal", "popular", "buy_again", "variant")
_ORDER = (3, 0, 4, 1, 2)  # the order parts are stacked in below, as indices into SOURCES
_TINY = np.float32(1e-30)


@dataclass
class CandidateBlock:
    users: np.ndarray  # int64 user indices of this block
    items: np.ndarray  # int32 (len(users), k) item indices, -1 padded, best first
    scores: np.ndarray  # float32 (len(users), k)
    sources: np.ndarray  # uint8 (len(users), k) index into SOURCES


@dataclass
class SourceInputs:
    """Everything the blend reads, indexed like the trainer's vocabularies."""

    weights: sp.csr_matrix  # (users, items) decayed purchase (and event) weights
    bought: sp.csr_matrix  # (users, items) > 0 where the customer bought the item
    repurchase: sp.csr_matrix  # (users, items) buy-again scores, repurchasable items only
    repurchasable: np.ndarray  # bool per item
    similarity: sp.csr_matrix  # (items, items) co-purchase
    variants: sp.csr_matrix  # (items, items) 0/1 same product
    user_factors: np.ndarray
    item_factors: np.ndarray
    popularity: np.ndarray  # (1 + markets, items)
    sold_in: np.ndarray  # bool (1 + markets, items)
    user_market: np.ndarray  # int per user, -1 unknown
    n_purchases: np.ndarray  # int per user
    active: np.ndarray  # bool per item: may be recommended at all


def _scale_rows(block: np.ndarray) -> np.ndarray:
    """Scale each row to a maximum of 1 in place; rows whose maximum is not a normal positive
    number (all zero, or underflowed by a long decay) become 0."""
    top = block.max(axis=1, keepdims=True)
    ok = top > _TINY
    np.divide(1.0, top, out=top, where=ok)
    top[~ok] = 0.0
    block *= top
    return block


def _dense(matrix: sp.csr_matrix) -> np.ndarray:
    return np.asarray(matrix.toarray(), dtype=np.float32)


def score_candidates(inputs: SourceInputs, config: TrainConfig,
                     users: np.ndarray | None = None) -> Iterator[CandidateBlock]:
    """Yield candidate blocks covering ``users`` (default: every user), in the given order."""
    cols = np.flatnonzero(inputs.active).astype(np.int32)
    n_users = inputs.weights.shape[0]
    users = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    k = min(config.candidates, cols.size)
    if k == 0:
        raise ValueError("no active items to recommend: check active_days and in_stock")
    sim_cols = inputs.similarity[:, cols].tocsr().astype(np.float32)
    use_variants = config.weight_variant > 0 and inputs.variants.nnz > 0
    var_cols = inputs.variants[:, cols].tocsr() if use_variants else None
    use_als = config.weight_als > 0
    item_f = np.ascontiguousarray(inputs.item_factors[cols], dtype=np.float32)
    rep_cols = inputs.repurchase[:, cols].tocsr()
    pop_cols = _scale_rows(np.ascontiguousarray(inputs.popularity[:, cols], dtype=np.float32))
    sold_cols = np.ascontiguousarray(inputs.sold_in[:, cols])
    restricted = not sold_cols.all()
    never_again = ~inputs.repurchasable
    position = np.full(inputs.weights.shape[1], -1, dtype=np.int64)  # item index -> column
    position[cols] = np.arange(cols.size)
    chunk = max(64, min(config.chunk_users, int(1.2e7 // max(cols.size, 1))))
    w = {name: np.float32(getattr(config, f"weight_{name}"))
         for name in ("repurchase", "itemknn", "variant", "als", "popularity")}

    for start in range(0, users.size, chunk):
        block = users[start:start + chunk]
        rows = inputs.user_market[block] + 1  # -1 (unknown) -> row 0 (overall)
        n = inputs.n_purchases[block].astype(np.float32)[:, None]
        trust = n / (n + np.float32(config.history_shrink)) if config.history_shrink else 1.0
        weights = inputs.weights[block]
        rep = _scale_rows(_dense(rep_cols[block])) * w["repurchase"]
        knn = _scale_rows(_dense(weights @ sim_cols)) * (w["itemknn"] * trust)
        var = (_scale_rows(_dense(weights @ var_cols)) * (w["variant"] * trust) if use_variants
               else np.zeros_like(knn))
        if use_als:
            als = inputs.user_factors[block] @ item_f.T
            np.maximum(als, 0, out=als)
            als = _scale_rows(als) * (w["als"] * trust)
        else:
            als = np.zeros_like(knn)
        pop = pop_cols[rows] * w["popularity"]
        total = rep + knn
        total += var
        total += als
        total += pop
        # exclusions: bought and not repurchasable; not sold in the customer's market
        sub = inputs.bought[block].tocoo()
        pos = position[sub.col]
        drop = (pos >= 0) & never_again[sub.col]
        total[sub.row[drop], pos[drop]] = -np.inf
        if restricted:
            total[~sold_cols[rows]] = -np.inf
        top = np.argpartition(-total, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(total, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        parts = np.stack([np.take_along_axis(part, top, axis=1)
                          for part in (rep, knn, var, als, pop)])
        source = np.asarray(_ORDER, dtype=np.uint8)[parts.argmax(axis=0)]
        source[parts[0] > 0] = SOURCES.index("buy_again")  # bought before: say so
        items = cols[top]
        invalid = ~np.isfinite(top_scores) | (top_scores <= 0)
        items[invalid] = -1
        top_scores[invalid] = 0.0
        yield CandidateBlock(users=block, items=items, scores=top_scores.astype(np.float32),
                             sources=source)
