"""Item-to-item neighbours from co-purchase ("customers who bought this also bought").

Similarity comes from implicit's item-item recommenders over the time-decayed user x item
matrix, so recent co-purchases count more and BM25 (default), cosine or TF-IDF weighting keeps
popular items from appearing in every list. Rows are returned as fixed-width top-K arrays so the
service answers with a lookup.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
from implicit.utils import ParameterWarning

from training.config import TrainConfig


def item_similarity(matrix: sp.csr_matrix, config: TrainConfig) -> sp.csr_matrix:
    """Sparse (items x items) similarity with at most ``config.neighbours`` entries per row,
    the diagonal removed."""
    k = config.neighbours + 1  # implicit keeps each item as its own neighbour
    if config.itemknn == "bm25":
        model = BM25Recommender(K=k, K1=config.bm25_k1, B=config.bm25_b)
    elif config.itemknn == "cosine":
        model = CosineRecommender(K=k)
    else:
        model = TFIDFRecommender(K=k)
    with warnings.catch_warnings():
        # implicit's weighting returns COO and its own kNN converts it to CSR (cheap)
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(matrix, show_progress=False)
    sim = model.similarity.tocsr().astype(np.float32)
    sim.setdiag(0)
    sim.eliminate_zeros()
    return sim


def top_k_rows(sim: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns of every row, best first: (int32 indices -1 padded, float32 scores)."""
    n = sim.shape[0]
    idx = np.full((n, k), -1, dtype=np.int32)
    score = np.zeros((n, k), dtype=np.float32)
    coo = sim.tocoo()
    if coo.nnz == 0:
        return idx, score
    order = np.lexsort((-coo.data, coo.row))
    rows, cols, vals = coo.row[order], coo.col[order], coo.data[order]
    starts = np.searchsorted(rows, np.arange(n))
    rank = np.arange(rows.size) - starts[rows]
    keep = rank < k
    idx[rows[keep], rank[keep]] = cols[keep]
    score[rows[keep], rank[keep]] = vals[keep]
    return idx, score
