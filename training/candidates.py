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

How it is computed (the cost grows with customers x their purchases, not customers x catalogue):
the blend is scored exactly on each customer's *pool*: every active item the sparse sources
reach (the customer's repurchasable purchases, the co-purchase and variant neighbours of what
they bought), the ``config.candidates`` best items by ALS score (:func:`als_pool`; with HNSW
the best :data:`HNSW_LIST`) and the
``2 x config.candidates`` most popular items sold in their market. An item outside the pool
scores only ``personal + popular`` and is below the pool's best ALS and popularity lists on
both. The ALS list is exact (FAISS brute force) unless customers x active items passes
:data:`EXACT_ALS_LIMIT` (or ``config.als_search`` says ``"hnsw"``): then it comes from a FAISS
HNSW graph over the item factors with inner-product similarity, whose recall against the
exact list is measured on a sample of customers and logged. ``personal`` is scaled by
the best ALS score in the pool, which with the exact list is the best over all active items.
The per-customer loop is compiled with numba and runs on every core.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numba
import numpy as np
import scipy.sparse as sp

from training.config import TrainConfig
from training.data.schema import DataError
from training.stages import shielded

log = logging.getLogger(__name__)
SOURCES = ("also_bought", "personal", "popular", "buy_again", "variant")
_ORDER = (3, 0, 4, 1, 2)  # the order parts are stacked in below, as indices into SOURCES
_TINY = np.float32(1e-30)
#: Customers x active items above which the ALS list comes from HNSW rather than an exact
#: search (an exact search costs that many dot products; 1e10 is about a minute on 2 cores).
EXACT_ALS_LIMIT = 1e10
BLOCK_USERS = 8192
#: With HNSW, the ALS list holds this many items, searched with this efSearch: on H&M's factors
#: 97% of the exact top 50 at about 60 us of one core per customer (the exact top 100 at
#: efSearch 200: 99%, 180 us), and the same served MAP@12 (benchmarks/RESULTS.md).
HNSW_LIST = 50
HNSW_EF_SEARCH = 64


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


def _csr(matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix)
    matrix.sum_duplicates()  # canonical: sorted indices, no duplicates
    return matrix


class _AlsSearch:
    """Top ALS items (positions among the active items) for blocks of users."""

    def __init__(self, item_f: np.ndarray, n_users: int, config: TrainConfig) -> None:
        mode = config.als_search
        if mode == "auto":
            mode = "exact" if n_users * item_f.shape[0] <= EXACT_ALS_LIMIT else "hnsw"
        self.mode = mode
        self.k = min(config.candidates if mode == "exact" else HNSW_LIST, item_f.shape[0])
        self.exact = faiss.IndexFlatIP(item_f.shape[1])
        self.exact.add(item_f)
        if mode == "hnsw":
            # an inner-product graph (an L2 graph over norm-augmented vectors found 38% of
            # H&M's exact top 100 at efSearch 200, this one 99%)
            self.graph = faiss.IndexHNSWFlat(item_f.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            self.graph.hnsw.efConstruction = 80
            self.graph.hnsw.efSearch = max(self.k, HNSW_EF_SEARCH)
            self.graph.add(item_f)

    def search(self, user_f: np.ndarray) -> np.ndarray:
        user_f = np.ascontiguousarray(user_f, dtype=np.float32)
        index = self.exact if self.mode == "exact" else self.graph
        return index.search(user_f, self.k)[1].astype(np.int32)

    def recall(self, user_f: np.ndarray) -> float:
        """Share of the exact top list the search finds, on ``user_f``."""
        found = self.search(user_f)
        truth = self.exact.search(np.ascontiguousarray(user_f, np.float32), self.k)[1]
        hits = sum(np.intersect1d(a[a >= 0], b[b >= 0]).size for a, b in zip(found, truth))
        return hits / max(int((truth >= 0).sum()), 1)


def als_pool(inputs: SourceInputs, config: TrainConfig, users: np.ndarray) -> _AlsSearch:
    """The ALS list's search over the active items' factors (exact or HNSW, see above)."""
    cols = np.flatnonzero(inputs.active)
    item_f = np.ascontiguousarray(inputs.item_factors[cols], dtype=np.float32)
    search = _AlsSearch(item_f, users.size, config)
    if search.mode == "hnsw":
        rng = np.random.default_rng(config.seed)
        sample = rng.choice(users, min(users.size, 1000), replace=False)
        log.info("ALS list from HNSW: recall %.3f of the exact top %d on %d customers",
                 search.recall(inputs.user_factors[sample]), search.k, sample.size)
    return search


@numba.njit(parallel=True, cache=True, fastmath=True)
def _blend(users, user_row, trust, w_ip, w_ix, w_d, sim_ip, sim_ix, sim_d, var_ip, var_ix,
           var_d, rep_ip, rep_ix, rep_d, bought_ip, bought_ix, position, never_again, user_f,
           item_f, als_top, pop, pop_top, sold, restricted, weights, k, n_parts):
    """One block: per user, the blend over their pool and its top ``k`` (see the module
    docstring); returns (positions -1 padded, scores, source part index)."""
    n = users.size
    n_cols = item_f.shape[0]
    out_idx = np.full((n, k), -1, np.int32)
    out_score = np.zeros((n, k), np.float32)
    out_part = np.zeros((n, k), np.int8)
    w_rep, w_knn, w_var, w_als, w_pop = weights[0], weights[1], weights[2], weights[3], weights[4]
    # scratch per piece, allocated here: numba may hoist allocations out of a prange body,
    # which would share them between threads
    slots = np.full((n_parts, n_cols), -1, np.int64)
    knns = np.zeros((n_parts, n_cols), np.float32)
    vars_ = np.zeros((n_parts, n_cols), np.float32)
    reps = np.zeros((n_parts, n_cols), np.float32)
    excludeds = np.zeros((n_parts, n_cols), np.bool_)
    pools = np.empty((n_parts, n_cols), np.int64)
    alss = np.empty((n_parts, n_cols), np.float32)
    totals = np.empty((n_parts, n_cols), np.float32)
    partss = np.empty((n_parts, n_cols, 5), np.float32)
    for piece in numba.prange(n_parts):
        lo = piece * n // n_parts
        hi = (piece + 1) * n // n_parts
        slot, knn, var, rep = slots[piece], knns[piece], vars_[piece], reps[piece]
        excluded, pool, als, total = excludeds[piece], pools[piece], alss[piece], totals[piece]
        parts = partss[piece]
        for b in range(lo, hi):
            u = users[b]
            m = 0
            for p in range(w_ip[u], w_ip[u + 1]):
                j = w_ix[p]
                w = w_d[p]
                for q in range(sim_ip[j], sim_ip[j + 1]):
                    c = sim_ix[q]
                    knn[c] += w * sim_d[q]
                    if slot[c] < 0:
                        slot[c] = m
                        pool[m] = c
                        m += 1
                for q in range(var_ip[j], var_ip[j + 1]):
                    c = var_ix[q]
                    var[c] += w * var_d[q]
                    if slot[c] < 0:
                        slot[c] = m
                        pool[m] = c
                        m += 1
            for p in range(rep_ip[u], rep_ip[u + 1]):
                c = rep_ix[p]
                rep[c] = rep_d[p]
                if slot[c] < 0:
                    slot[c] = m
                    pool[m] = c
                    m += 1
            for t in range(als_top.shape[1]):
                c = als_top[b, t]
                if c >= 0 and slot[c] < 0:
                    slot[c] = m
                    pool[m] = c
                    m += 1
            row = user_row[b]
            for t in range(pop_top.shape[1]):
                c = pop_top[row, t]
                if c >= 0 and slot[c] < 0:
                    slot[c] = m
                    pool[m] = c
                    m += 1
            for p in range(bought_ip[u], bought_ip[u + 1]):
                item = bought_ix[p]
                c = position[item]
                if c >= 0 and never_again[item] and slot[c] >= 0:  # outside the pool: moot
                    excluded[c] = True
            # maxima over the pool, ALS values
            top_knn = np.float32(0)
            top_var = np.float32(0)
            top_rep = np.float32(0)
            top_als = np.float32(0)
            for t in range(m):
                c = pool[t]
                dot = np.float32(0)
                for f in range(user_f.shape[1]):
                    dot += user_f[u, f] * item_f[c, f]
                if dot < 0:
                    dot = np.float32(0)
                als[t] = dot
                top_knn = max(top_knn, knn[c])
                top_var = max(top_var, var[c])
                top_rep = max(top_rep, rep[c])
                top_als = max(top_als, dot)
            s_knn = w_knn * trust[b] / top_knn if top_knn > 1e-30 else np.float32(0)
            s_var = w_var * trust[b] / top_var if top_var > 1e-30 else np.float32(0)
            s_rep = w_rep / top_rep if top_rep > 1e-30 else np.float32(0)
            s_als = w_als * trust[b] / top_als if top_als > 1e-30 else np.float32(0)
            for t in range(m):
                c = pool[t]
                parts[t, 0] = rep[c] * s_rep
                parts[t, 1] = knn[c] * s_knn
                parts[t, 2] = var[c] * s_var
                parts[t, 3] = als[t] * s_als
                parts[t, 4] = pop[row, c] * w_pop
                value = parts[t, 0] + parts[t, 1] + parts[t, 2] + parts[t, 3] + parts[t, 4]
                if excluded[c] or (restricted and not sold[row, c]):
                    value = -np.inf
                total[t] = value
            keys = -total[:m]
            if m > 2 * k:  # only the best k are sorted
                kth = np.partition(keys, k - 1)[k - 1]
                chosen = np.flatnonzero(keys <= kth)
                order = chosen[np.argsort(keys[chosen], kind="mergesort")]
            else:
                order = np.argsort(keys, kind="mergesort")
            for r in range(min(k, order.size)):
                t = order[r]
                value = total[t]
                best = 0
                for x in range(1, 5):
                    if parts[t, x] > parts[t, best]:
                        best = x
                if parts[t, 0] > 0:
                    best = 0
                out_part[b, r] = best
                if np.isfinite(value) and value > 0:
                    out_idx[b, r] = pool[t]
                    out_score[b, r] = value
            for t in range(m):  # reset for the next user
                c = pool[t]
                slot[c] = -1
                knn[c] = 0
                var[c] = 0
                rep[c] = 0
                excluded[c] = False
    return out_idx, out_score, out_part


def score_candidates(inputs: SourceInputs, config: TrainConfig,
                     users: np.ndarray | None = None) -> Iterator[CandidateBlock]:
    """Yield candidate blocks covering ``users`` (default: every user), in the given order.

    Raises :class:`DataError` (when the first block is asked for) if no item is active: the
    data, not the code, leaves nothing to recommend."""
    cols = np.flatnonzero(inputs.active).astype(np.int32)
    n_users = inputs.weights.shape[0]
    users = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    k = min(config.candidates, cols.size)
    if k == 0:
        raise DataError(f"no item to recommend: none is both in stock (the items' in_stock "
                        f"column) and bought in the last {config.active_days} days of the data "
                        f"(TrainConfig.active_days)")
    weights = _csr(inputs.weights.astype(np.float32))
    sim_cols = _csr(inputs.similarity[:, cols].astype(np.float32))
    use_variants = config.weight_variant > 0 and inputs.variants.nnz > 0
    var_cols = _csr(inputs.variants[:, cols].astype(np.float32) if use_variants
                    else sp.csr_matrix(inputs.similarity.shape, dtype=np.float32))
    rep_cols = _csr(inputs.repurchase[:, cols].astype(np.float32))
    bought = _csr(inputs.bought)
    pop_cols = _scale_rows(np.ascontiguousarray(inputs.popularity[:, cols], dtype=np.float32))
    sold_cols = np.ascontiguousarray(inputs.sold_in[:, cols])
    restricted = not sold_cols.all()
    pool_pop = min(2 * k, cols.size)
    ranked = np.where(sold_cols & (pop_cols > 0), pop_cols, -np.inf)
    pop_top = np.argsort(-ranked, axis=1, kind="stable")[:, :pool_pop].astype(np.int32)
    pop_top[~np.isfinite(np.take_along_axis(ranked, pop_top, axis=1))] = -1
    position = np.full(inputs.weights.shape[1], -1, dtype=np.int32)  # item index -> column
    position[cols] = np.arange(cols.size, dtype=np.int32)
    never_again = np.ascontiguousarray(~inputs.repurchasable)
    item_f = np.ascontiguousarray(inputs.item_factors[cols], dtype=np.float32)
    user_f = np.ascontiguousarray(inputs.user_factors, dtype=np.float32)
    use_als = config.weight_als > 0
    search = als_pool(inputs, config, users) if use_als else None
    w = np.asarray([config.weight_repurchase, config.weight_itemknn, config.weight_variant,
                    config.weight_als, config.weight_popularity], dtype=np.float32)
    n_parts = 4 * max(numba.get_num_threads(), 1)

    for start in range(0, users.size, BLOCK_USERS):
        block = users[start:start + BLOCK_USERS]
        rows = (inputs.user_market[block] + 1).astype(np.int64)  # -1 (unknown) -> row 0
        n = inputs.n_purchases[block].astype(np.float32)
        trust = (n / (n + np.float32(config.history_shrink)) if config.history_shrink
                 else np.ones(block.size, np.float32))
        als_top = (search.search(user_f[block]) if search is not None
                   else np.full((block.size, 0), -1, np.int32))
        with shielded():  # numba's compiler and cache call back into Python
            idx, score, part = _blend(
                block, rows, trust.astype(np.float32), weights.indptr, weights.indices,
                weights.data, sim_cols.indptr, sim_cols.indices, sim_cols.data,
                var_cols.indptr, var_cols.indices, var_cols.data, rep_cols.indptr,
                rep_cols.indices, rep_cols.data, bought.indptr, bought.indices, position,
                never_again, user_f,
                item_f if use_als else np.zeros((cols.size, user_f.shape[1]), np.float32),
                als_top, pop_cols, pop_top, sold_cols, restricted, w, k, n_parts)
        items = np.where(idx >= 0, cols[np.maximum(idx, 0)], -1).astype(np.int32)
        source = np.asarray(_ORDER, dtype=np.uint8)[part]
        yield CandidateBlock(users=block, items=items, scores=score, sources=source)
