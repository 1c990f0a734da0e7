"""The pooled candidate blend (training/candidates.py) against the blend written out densely
over every active item, on the demo shop: with the exact ALS list they must agree score for
score; with the HNSW list nearly always."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from training import pipeline
from training.candidates import SOURCES, SourceInputs, score_candidates
from training.config import TrainConfig
from training.data.synthetic import generate_shop
from training.models import repurchase
from training.models.popularity import popularity

_ORDER = (3, 0, 4, 1, 2)


def _scale_rows(block: np.ndarray) -> np.ndarray:
    top = block.max(axis=1, keepdims=True)
    ok = top > 1e-30
    return np.where(ok, block / np.where(ok, top, 1), 0).astype(np.float32)


def dense_blend(inputs: SourceInputs, config: TrainConfig):
    """The module docstring's blend, every customer x every active item at once."""
    cols = np.flatnonzero(inputs.active)
    k = min(config.candidates, cols.size)
    rows = inputs.user_market + 1
    rep = _scale_rows(inputs.repurchase[:, cols].toarray()) * config.weight_repurchase
    knn = _scale_rows((inputs.weights @ inputs.similarity[:, cols]).toarray()) \
        * config.weight_itemknn
    var = _scale_rows((inputs.weights @ inputs.variants[:, cols]).toarray()) \
        * config.weight_variant
    als = _scale_rows(np.maximum(inputs.user_factors @ inputs.item_factors[cols].T, 0)) \
        * config.weight_als
    pop = _scale_rows(inputs.popularity[:, cols])[rows] * config.weight_popularity
    total = rep + knn + var + als + pop
    bought = inputs.bought[:, cols].toarray() > 0
    total[bought & ~inputs.repurchasable[cols]] = -np.inf
    total[~inputs.sold_in[:, cols][rows]] = -np.inf
    top = np.argsort(-total, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(total, top, axis=1)
    parts = np.stack([np.take_along_axis(p, top, axis=1) for p in (rep, knn, var, als, pop)])
    source = np.asarray(_ORDER)[parts.argmax(axis=0)]
    source[parts[0] > 0] = SOURCES.index("buy_again")
    items = np.where(np.isfinite(scores) & (scores > 0), cols[top], -1)
    return items, np.where(items >= 0, scores, 0), source


@pytest.fixture(scope="module")
def inputs():
    shop = generate_shop(seed=7, n_customers=1500, n_items=900)
    config = TrainConfig(factors=16, iterations=5)
    fitted = pipeline.fit(shop, config, progress=False)
    inter = fitted.inter
    attrs = pipeline._item_attributes(shop, inter)
    sold_in = np.vstack([np.ones(len(inter.items), bool), attrs["_sold"].T]) \
        & attrs["item_in_stock"]
    pop = popularity(inter.purchases, len(inter.items), inter.markets.ids, inter.end,
                     config.popularity_days, config.popularity_half_life_days)
    active = np.zeros(len(inter.items), dtype=bool)
    recent = inter.purchases.filter(pl.col("ts") > inter.end - dt.timedelta(days=90))
    active[recent["item_idx"].unique().to_numpy()] = True
    active &= attrs["item_in_stock"]
    rep = repurchase.fit_repurchase(inter.purchases, inter.item_category,
                                    len(inter.categories), config)
    rep_scores = repurchase.repurchase_scores(inter.purchases, inter.matrix.shape, inter.end,
                                              rep, config.repurchase_half_life_days)
    history = pipeline._recent_purchases(inter, config.history_items)
    return SourceInputs(
        weights=inter.matrix, bought=fitted.bought, repurchase=rep_scores,
        repurchasable=rep.repurchasable, similarity=fitted.similarity, variants=fitted.variants,
        user_factors=fitted.factors.users, item_factors=fitted.factors.items, popularity=pop,
        sold_in=sold_in, user_market=inter.user_market, n_purchases=history["n"].to_numpy(),
        active=active)


def _pooled(inputs, config):
    blocks = list(score_candidates(inputs, config))
    assert np.array_equal(np.concatenate([b.users for b in blocks]),
                          np.arange(inputs.weights.shape[0]))
    return (np.vstack([b.items for b in blocks]), np.vstack([b.scores for b in blocks]),
            np.vstack([b.sources for b in blocks]))


def test_exact_pool_equals_the_dense_blend(inputs):
    config = TrainConfig(candidates=40, als_search="exact")
    items, scores, sources = _pooled(inputs, config)
    ref_items, ref_scores, ref_sources = dense_blend(inputs, config)
    # the same score at every rank (ties may order their items differently)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    same = [np.intersect1d(a[a >= 0], b[b >= 0]).size / max((b >= 0).sum(), 1)
            for a, b in zip(items, ref_items)]
    assert np.mean(same) > 0.999
    untied = np.abs(np.diff(ref_scores, axis=1)).min(axis=1) > 1e-5
    assert untied.sum() > 100
    assert np.array_equal(items[untied], ref_items[untied])
    valid = ref_items[untied] >= 0
    agree = (sources[untied] == ref_sources[untied])[valid].mean()
    assert agree > 0.999, agree


def test_hnsw_pool_nearly_equals_the_dense_blend(inputs):
    config = TrainConfig(candidates=40, als_search="hnsw")
    items, _, _ = _pooled(inputs, config)
    ref_items, _, _ = dense_blend(inputs, config)
    same = [np.intersect1d(a[a >= 0], b[b >= 0]).size / max((b >= 0).sum(), 1)
            for a, b in zip(items, ref_items)]
    assert np.mean(same) > 0.95
