"""The decision weights of the size model: a multinomial logit over each held-out purchase's
candidate sizes, on the features of :func:`artifacts.sizing.candidate_features` (the ones the
service scores with), with a small ridge toward :data:`artifacts.sizing.DEFAULT_WEIGHTS`.

Called by :func:`training.models.sizes.fit_sizes` with a model fitted on the purchases before
the last part of the training period and the kept purchases of that last part as targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy.optimize import minimize

from artifacts.profiles import SizePreference
from artifacts.sizing import DEFAULT_WEIGHTS, FEATURES, SizeView, candidate_features, evidence

if TYPE_CHECKING:
    from training.models.sizes import SizeConfig


def fit_weights(view: SizeView, profiles: dict[int, list[SizePreference]],
                targets: pl.DataFrame, config: SizeConfig) -> tuple[dict[str, float], int]:
    """Multinomial logit over each target's candidate sizes; returns (weights, rows used)."""
    if targets.height > config.max_holdout_rows:
        targets = targets.sample(config.max_holdout_rows, seed=config.seed)
    feats, truth = [], []
    for u, i, s, p in targets.select("user_idx", "item_idx", "sys", "pos").iter_rows():
        ev = evidence(view, s, profiles.get(u, ()))
        if ev is None:
            continue
        cand, x, _ = candidate_features(view, i, ev)
        hit = np.flatnonzero(cand == p)
        if hit.size and len(cand) > 1:
            feats.append(x)
            truth.append(int(hit[0]))
    if len(feats) < config.min_holdout_rows:
        return dict(DEFAULT_WEIGHTS), len(feats)
    width = max(len(x) for x in feats)
    X = np.zeros((len(feats), width, len(FEATURES)))
    mask = np.zeros((len(feats), width), bool)
    for r, x in enumerate(feats):
        X[r, :len(x)], mask[r, :len(x)] = x, True
    y = np.asarray(truth)
    rows = np.arange(len(y))
    w0 = np.asarray([DEFAULT_WEIGHTS[f] for f in FEATURES])
    ridge = 1e-3 * len(y)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = np.where(mask, X @ w, -np.inf)
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        log_p = s[rows, y] - np.log(total[:, 0])  # log-softmax, exact when p underflows
        nll = -log_p.sum() + ridge * ((w - w0) ** 2).sum()
        grad = -(X[rows, y] - (p[:, :, None] * X).sum(axis=1)).sum(axis=0) + 2 * ridge * (w - w0)
        return nll, grad

    result = minimize(loss, w0, jac=True, method="L-BFGS-B")
    w = result.x if np.all(np.isfinite(result.x)) else w0
    return {f: round(float(v), 5) for f, v in zip(FEATURES, w)}, len(y)
