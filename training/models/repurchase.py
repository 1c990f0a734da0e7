"""Repurchase ("buy again"): which items customers buy again, and how likely.

An item's repurchase rate is the share of its buyers who, having kept it (a purchase not
returned), bought it again at a later time (a later order; several units in one order do not
count, and an exchange - returned, then bought again in another size - is not a repurchase). Rates are shrunk towards the item's
category and categories towards the shop, with ``config.repurchase_prior`` pseudo-buyers, so an
item with three buyers borrows its category's rate. An item is *repurchasable* when its rate is
at least ``repurchase_min_ratio`` times the shop-wide rate and at least ``repurchase_min_rate``:
the bundle carries that flag per item, the service and the candidates exclude what a customer
bought unless it is set.

The buy-again score of (customer, item) is the item's rate times the customer's time-decayed
purchase count of it, for repurchasable items only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from training.config import TrainConfig
from training.models.sorted_runs import runs


@dataclass
class Repurchase:
    item_rate: np.ndarray  # float32 per item
    category_rate: np.ndarray  # float32 per category
    category_buyers: np.ndarray  # int64 per category: (customer, item) pairs behind the rate
    overall: float
    threshold: float
    repurchasable: np.ndarray  # bool per item


def fit_repurchase(purchases: pl.DataFrame, item_category: np.ndarray, n_categories: int,
                   config: TrainConfig) -> Repurchase:
    """Rates from ``purchases`` (``user_idx``, ``item_idx``, ``ts``, ``returned``)."""
    n_items = item_category.size
    item, again = _kept_pairs(purchases, n_items)
    overall = float(again.mean()) if again.size else 0.0
    prior = config.repurchase_prior
    cat = item_category[item]
    cat_pairs = np.bincount(cat, minlength=n_categories)
    cat_again = np.bincount(cat, weights=again, minlength=n_categories)
    cat_rate = (cat_again + prior * overall) / np.maximum(cat_pairs + prior, 1e-12)
    item_pairs = np.bincount(item, minlength=n_items)
    item_again = np.bincount(item, weights=again, minlength=n_items)
    item_rate = (item_again + prior * cat_rate[item_category]) / np.maximum(item_pairs + prior,
                                                                             1e-12)
    if prior == 0:  # no shrinkage: unseen items and categories get the shop-wide rate
        cat_rate = np.where(cat_pairs > 0, cat_rate, overall)
        item_rate = np.where(item_pairs > 0, item_rate, cat_rate[item_category])
    threshold = max(config.repurchase_min_rate, config.repurchase_min_ratio * overall)
    repurchasable = (item_rate >= threshold) & (item_rate > 0)
    return Repurchase(item_rate=item_rate.astype(np.float32),
                      category_rate=cat_rate.astype(np.float32), category_buyers=cat_pairs,
                      overall=overall, threshold=threshold, repurchasable=repurchasable)


def _kept_pairs(purchases: pl.DataFrame, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (customer, item) pair with a kept purchase: the item, and 1.0 when the customer
    bought it again after their first kept purchase of it (else 0.0).

    One stable sort of the pair keys and per-run reductions: a fraction of the memory of a
    hash group-by over (customer, item) at millions of pairs."""
    if purchases.height == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    key = purchases["user_idx"].to_numpy().astype(np.int64) * n_items \
        + purchases["item_idx"].to_numpy()
    order = np.argsort(key, kind="stable")
    key = key[order]
    start, _ = runs(key)
    ts = purchases["ts"].dt.epoch("us").to_numpy()[order]
    kept = ~purchases["returned"].fill_null(False).to_numpy()[order]
    del order
    last = np.maximum.reduceat(ts, start)
    never = np.iinfo(np.int64).max
    first_kept = np.minimum.reduceat(np.where(kept, ts, never), start)
    has_kept = first_kept != never
    return key[start][has_kept] % n_items, (last > first_kept)[has_kept].astype(np.float64)


def repurchase_scores(purchases: pl.DataFrame, shape: tuple[int, int], end: dt.datetime,
                      model: Repurchase, half_life_days: float) -> sp.csr_matrix:
    """(users x items) buy-again scores: rate x decayed purchase count, repurchasable only."""
    decay = (pl.lit(0.5).pow((pl.lit(end) - pl.col("ts")).dt.total_seconds()
                             / (86_400 * half_life_days)))
    repurchasable = pl.Series(model.repurchasable)
    rows = purchases.select("user_idx", "item_idx", w=decay).filter(
        pl.lit(repurchasable).gather(pl.col("item_idx")))  # the rest would score 0
    items = rows["item_idx"].to_numpy()
    weight = rows["w"].to_numpy() * model.item_rate[items]
    matrix = sp.csr_matrix((weight.astype(np.float32), (rows["user_idx"].to_numpy(), items)),
                           shape=shape)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def summary(model: Repurchase, categories: list[str], top: int = 20) -> dict:
    """For the manifest: the threshold, counts and the most and least repurchased categories
    with enough buyers to say."""
    seen = np.flatnonzero(model.category_buyers >= 50)
    order = seen[np.argsort(-model.category_rate[seen], kind="stable")]
    rate = {categories[c]: round(float(model.category_rate[c]), 5) for c in order}
    flagged = sorted({categories[c] for c in order
                      if model.category_rate[c] >= model.threshold})
    return {
        "overall_rate": round(model.overall, 5),
        "threshold": round(model.threshold, 5),
        "repurchasable_items": int(model.repurchasable.sum()),
        "repurchasable_categories": flagged,
        "category_rates_top": dict(list(rate.items())[:top]),
        "category_rates_bottom": dict(list(rate.items())[top:][-top:]),
    }
