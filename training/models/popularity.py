"""Popularity: time-decayed purchase counts in a recent window, overall and per market."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl


def popularity(purchases: pl.DataFrame, n_items: int, market_names: list[str],
               end: dt.datetime, days: int, half_life_days: float) -> np.ndarray:
    """Float32 scores of shape (1 + n_markets, n_items): row 0 overall, row 1+m market m.

    Counts purchases in the ``days`` before ``end``, each weighted by a decay with
    ``half_life_days``; a market with no purchases of its own falls back to the overall row.
    """
    since = end - dt.timedelta(days=days)
    recent = purchases.filter(pl.col("ts") > since).with_columns(
        w=pl.lit(0.5).pow((pl.lit(end) - pl.col("ts")).dt.total_seconds() / (86400 * half_life_days))
    )
    scores = np.zeros((1 + len(market_names), n_items), dtype=np.float32)
    np.add.at(scores[0], recent["item_idx"].to_numpy(), recent["w"].to_numpy().astype(np.float32))
    market_pos = {m: i for i, m in enumerate(market_names)}
    by_market = recent.drop_nulls("country")
    rows = np.asarray([market_pos[c] + 1 for c in by_market["country"].to_list()], dtype=np.int64)
    if rows.size:
        np.add.at(scores, (rows, by_market["item_idx"].to_numpy()),
                  by_market["w"].to_numpy().astype(np.float32))
    for m in range(len(market_names)):
        if not scores[m + 1].any():
            scores[m + 1] = scores[0]
    return scores


def top_lists(scores: np.ndarray, eligible: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` items per row among ``eligible`` (bool, shape like ``scores``) with score > 0.

    Returns (int32 indices -1 padded, float32 scores), best first.
    """
    masked = np.where(eligible & (scores > 0), scores, -np.inf)
    k = min(k, scores.shape[1])
    part = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(masked, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int32)
    val = np.take_along_axis(part_scores, order, axis=1)
    idx[~np.isfinite(val)] = -1
    val[~np.isfinite(val)] = 0.0
    return idx, val.astype(np.float32)
