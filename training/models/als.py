"""Implicit-feedback matrix factorisation (implicit's ALS) and its FAISS index.

The confidence matrix is ``alpha * weights`` with weights already time-decayed and with returns
down-weighted by the interaction builder. Item factors go into an exact inner-product FAISS index
in the bundle; user factors go into the batch profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from training.config import TrainConfig


@dataclass
class Factors:
    users: np.ndarray  # float32 (n_users, f)
    items: np.ndarray  # float32 (n_items, f); zero rows for items never bought


def fit_als(matrix: sp.csr_matrix, config: TrainConfig, show_progress: bool = False) -> Factors:
    """Fit ALS on the (users x items) weight matrix."""
    # implicit parallelises itself; BLAS threads on top of that only contend.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=config.factors, regularization=config.regularization, alpha=config.alpha,
            iterations=config.iterations, random_state=config.seed,
            calculate_training_loss=False,
        )
        model.fit(matrix, show_progress=show_progress)
    users = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    bought = np.asarray(matrix.getnnz(axis=0) > 0)
    items[~bought] = 0.0
    return Factors(users=users, items=items)


def build_index(item_factors: np.ndarray) -> faiss.Index:
    """Exact inner-product index over every item (row i = item index i)."""
    index = faiss.IndexFlatIP(item_factors.shape[1])
    index.add(np.ascontiguousarray(item_factors, dtype=np.float32))
    return index


def factor_neighbours(item_factors: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine neighbours in factor space for ``items`` among all items with factors.

    Returns (int32 indices -1 padded, float32 scores) of shape (len(items), k), self excluded.
    """
    norms = np.linalg.norm(item_factors, axis=1)
    has = np.flatnonzero(norms > 0)
    out_idx = np.full((len(items), k), -1, dtype=np.int32)
    out_score = np.zeros((len(items), k), dtype=np.float32)
    if has.size < 2 or len(items) == 0:
        return out_idx, out_score
    unit = (item_factors[has] / norms[has, None]).astype(np.float32)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    query = item_factors[items] / np.maximum(norms[items], 1e-12)[:, None]
    kk = min(k + 1, has.size)
    scores, pos = index.search(np.ascontiguousarray(query, dtype=np.float32), kk)
    found = np.where(pos >= 0, has[np.clip(pos, 0, None)], -1)
    for row in range(len(items)):  # drop self, keep order; k is small
        keep = found[row][(found[row] != items[row]) & (found[row] >= 0)][:k]
        out_idx[row, :keep.size] = keep
        out_score[row, :keep.size] = scores[row][(found[row] != items[row]) & (found[row] >= 0)][:k]
    return out_idx, out_score
