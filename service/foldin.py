"""Personal vectors for customers the model has not seen buy: the ALS closed form for one user.

With item factors ``Y`` fixed, implicit's ALS minimises, per user,
``sum_i c_i (p_i - x.y_i)^2 + reg |x|^2`` with confidence ``c_i = alpha * w_i`` on the items
the user bought (``p_i = 1``) and ``c = 1``, ``p = 0`` elsewhere. Its solution is

    x = (Y'Y + reg I + sum_i (c_i - 1) y_i y_i')^-1  sum_i c_i y_i

``Y'Y`` is computed once per bundle, so folding a user in costs one small (f x f) solve; the
candidate scan is one FAISS batch search for all users folded in by a request, run off the
event loop by the caller, over the items that can be recommended at all (bought at least once
in training and in stock: 17k of H&M's 105k), with one FAISS thread per process - a service
worker shares its cores with the others, and OpenMP threads spinning beside the event loop cost
more than they save.
"""

from __future__ import annotations

import faiss
import numpy as np

from artifacts.catalog import Catalog


class FoldIn:
    """Folds users into one bundle's ALS space and scores candidates for them."""

    def __init__(self, catalog: Catalog):
        bundle = catalog.bundle
        self.catalog = catalog
        self.factors = np.asarray(bundle["item_factors"], dtype=np.float32)
        config = bundle.manifest.config
        self.regularization = float(config.get("regularization", 0.05))
        self.alpha = float(config.get("alpha", 1.0))
        self.gram = (self.factors.T @ self.factors).astype(np.float64)
        in_stock = np.asarray(bundle["item_in_stock"], dtype=bool)
        self.active = np.flatnonzero((np.abs(self.factors).sum(axis=1) > 0) & in_stock)
        self.index = faiss.IndexFlatIP(self.factors.shape[1])
        self.index.add(np.ascontiguousarray(self.factors[self.active]))
        faiss.omp_set_num_threads(1)

    def vectors(self, histories: list[list[int]]) -> np.ndarray:
        """One float32 vector per history of item indices (more recent first: weights decay
        gently with position so the newest purchases count a little more)."""
        f = self.factors.shape[1]
        out = np.zeros((len(histories), f), dtype=np.float32)
        eye = self.regularization * np.eye(f)
        for row, items in enumerate(histories):
            if not items:
                continue
            y = self.factors[np.asarray(items, dtype=np.int64)].astype(np.float64)
            weights = 1.0 / (1.0 + 0.1 * np.arange(len(items)))
            confidence = self.alpha * weights
            a = self.gram + eye + (y.T * (confidence - 1.0)) @ y
            b = (y.T * confidence).sum(axis=1)
            out[row] = np.linalg.solve(a, b)
        return out

    def candidates(self, histories: list[list[int]], k: int) -> list[tuple[list[int], list[float]]]:
        """Top ``k`` items by inner product for each history (bought items left out), with
        scores scaled to a maximum of 1; CPU-bound (call it in a worker thread)."""
        vectors = self.vectors(histories)
        depth = min(k + max((len(h) for h in histories), default=0), self.active.size)
        if depth == 0:
            return [([], []) for _ in histories]
        scores, pos = self.index.search(vectors, depth)
        idx = np.where(pos >= 0, self.active[np.clip(pos, 0, None)], -1)
        out = []
        for row, items in enumerate(histories):
            bought = set(items)
            keep = [(int(i), float(s)) for i, s in zip(idx[row], scores[row])
                    if i >= 0 and s > 0 and int(i) not in bought][:k]
            top = keep[0][1] if keep else 1.0
            out.append(([i for i, _ in keep], [round(s / top, 5) for _, s in keep]))
        return out
