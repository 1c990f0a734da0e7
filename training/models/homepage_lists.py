"""The lists the homepage reads besides popularity, precomputed per market for the bundle.

* ``new_idx`` / ``new_score``: items first seen in the ``new_arrival_days`` before the end of the
  data, ranked by freshness (1 on the last day, falling to 0 at the window's start) plus their
  popularity in the market scaled to [0, 1];
* ``sale_idx`` / ``sale_score``: items whose current price is at least ``sale_min_markdown``
  below their list price, ranked by the markdown (0..1) plus the scaled popularity;
* ``item_name``: display names, for titles such as "Because you bought <name>".

Each list row is a market row of the bundle (row 0: every market), holds only items sold there
and in stock, and has at most ``list_size`` items (``artifacts.homepage.HomepageRules``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from artifacts.homepage_rules import HomepageRules
from training.data.schema import CanonicalData
from training.interactions import Interactions
from training.models.popularity import top_lists


def market_lists(data: CanonicalData, inter: Interactions, popularity: np.ndarray,
                 sold_in: np.ndarray, rules: HomepageRules) -> dict[str, np.ndarray]:
    """Bundle arrays for the homepage; ``popularity`` and ``sold_in`` are (1 + markets, items)
    as the trainer's popularity stage computes them."""
    items = data.items
    age = items.select(((pl.lit(inter.end) - pl.col("first_seen")).dt.total_seconds() / 86_400)
                       .alias("age"))["age"].fill_null(np.nan).to_numpy().astype(np.float64)
    days = float(rules.new_arrival_days)
    fresh = (age >= 0) & (age <= days)
    freshness = np.where(fresh, 1.0 - np.nan_to_num(age) / (days + 1.0), 0.0)
    top = popularity.max(axis=1, keepdims=True)
    scaled = np.divide(popularity, top, out=np.zeros_like(popularity), where=top > 0)
    new_idx, new_score = top_lists((freshness[None, :] + scaled).astype(np.float32),
                                   sold_in & fresh[None, :], rules.list_size)

    price = items["price"].fill_null(np.nan).to_numpy().astype(np.float64)
    listed = items["list_price"].fill_null(np.nan).to_numpy().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        markdown = np.where((listed > 0) & (price > 0), 1.0 - price / listed, 0.0)
    markdown = np.nan_to_num(markdown)
    on_sale = markdown >= rules.sale_min_markdown
    sale_idx, sale_score = top_lists((markdown[None, :] + scaled).astype(np.float32),
                                     sold_in & on_sale[None, :], rules.list_size)
    return {
        "item_name": items["name"].fill_null("").to_numpy().astype(np.str_),
        "new_idx": new_idx, "new_score": new_score,
        "sale_idx": sale_idx, "sale_score": sale_score,
    }


def describe(lists: dict[str, np.ndarray]) -> dict[str, int]:
    """Items in the overall (row 0) lists, for the manifest's counts."""
    return {"new_arrivals": int((lists["new_idx"][0] >= 0).sum()),
            "on_sale": int((lists["sale_idx"][0] >= 0).sum())}
