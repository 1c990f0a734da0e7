"""From canonical tables to indexed, weighted interactions.

This is where external ids become indices, once: the item vocabulary is the catalogue order
(every bundle array uses it), the user vocabulary is the sorted set of purchasing customers.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from artifacts.vocabulary import Vocabulary
from training.config import TrainConfig
from training.data.schema import CanonicalData, DataError

log = logging.getLogger(__name__)
UNCATEGORISED = "uncategorised"


@dataclass
class Interactions:
    """Indexed training data.

    ``purchases`` keeps one row per purchase with ``user_idx``, ``item_idx``, ``ts``, ``weight``
    (time-decayed, returns down-weighted), ``country``, ``price`` (per unit), ``quantity``,
    ``size``, ``fit`` and ``returned``; ``matrix`` sums the weights per
    (user, item) as a CSR matrix of shape (users, items), plus the weighted views and carts of
    those customers when ``config.view_weight`` / ``config.cart_weight`` are positive.
    """

    items: Vocabulary
    users: Vocabulary
    markets: Vocabulary
    categories: Vocabulary
    item_category: np.ndarray  # int32 per item
    purchases: pl.DataFrame
    matrix: sp.csr_matrix
    user_market: np.ndarray  # int32 per user, -1 when unknown
    start: dt.datetime
    end: dt.datetime
    dropped_unknown_items: int


def _market_vocabulary(data: CanonicalData) -> Vocabulary:
    names: set[str] = set(data.purchases["country"].drop_nulls().unique().to_list())
    names |= set(data.items["markets"].explode().drop_nulls().unique().to_list())
    if data.customers is not None:
        names |= set(data.customers["country"].drop_nulls().unique().to_list())
    return Vocabulary(sorted(names))


def build_interactions(data: CanonicalData, config: TrainConfig) -> Interactions:
    """Index ``data`` and weight its purchases; purchases of items not in the catalogue are
    dropped (and counted), because nothing could be served about them."""
    items = Vocabulary(data.items["item_id"].to_list())
    categories_col = data.items["category"].fill_null(UNCATEGORISED)
    categories = Vocabulary(sorted(categories_col.unique().to_list()))
    item_category = np.asarray([categories.index(c) for c in categories_col.to_list()], np.int32)
    markets = _market_vocabulary(data)

    item_map = pl.DataFrame({"item_id": items.ids, "item_idx": np.arange(len(items), dtype=np.int32)})
    # ids become indices column by column (replace_strict), not by joining whole tables: at
    # 20M purchases every materialised intermediate of a join is gigabytes
    kept = (data.purchases.lazy()
            .select("user_id", "ts", "country", "price", "quantity", "size", "fit", "returned",
                    item_idx=pl.col("item_id").replace_strict(
                        item_map["item_id"], item_map["item_idx"], default=None))
            .filter(pl.col("item_idx").is_not_null())
            .collect())
    dropped = data.purchases.height - kept.height
    if dropped:
        log.warning("dropped %d purchase(s) of items missing from the catalogue", dropped)
    if kept.height == 0:
        raise DataError(f"{data.name}: no purchase refers to an item in the catalogue (compare "
                        "the purchases' item ids with the items table's)")

    users = Vocabulary(kept["user_id"].unique().sort().to_list())
    user_map = pl.DataFrame({"user_id": users.ids, "user_idx": np.arange(len(users), dtype=np.int32)})
    start = kept["ts"].min()
    end = kept["ts"].max()
    half_life_us = config.half_life_days * 86_400e6
    purchases = (
        kept.lazy()
        .with_columns(
            user_idx=pl.col("user_id").replace_strict(user_map["user_id"], user_map["user_idx"]),
            weight=(pl.lit(0.5).pow((pl.lit(end) - pl.col("ts")).dt.total_microseconds()
                                    .cast(pl.Float64) / half_life_us)
                    * pl.when(pl.col("returned").fill_null(False))
                    .then(config.returned_weight).otherwise(1.0)).cast(pl.Float32),
        )
        .select("user_idx", "item_idx", "ts", "weight", "country", "price", "quantity",
                "size", "fit", "returned")
        .sort("user_idx", "ts", maintain_order=True)  # same-time lines keep the file's order
        .collect()
    )
    del kept
    matrix = sp.coo_matrix(
        (purchases["weight"].to_numpy(), (purchases["user_idx"].to_numpy(),
                                          purchases["item_idx"].to_numpy())),
        shape=(len(users), len(items)), dtype=np.float32,
    ).tocsr()
    matrix.sum_duplicates()
    events = _event_matrix(data, config, item_map, user_map, end, matrix.shape)
    if events is not None:
        matrix = (matrix + events).tocsr()
    matrix.eliminate_zeros()

    return Interactions(
        items=items, users=users, markets=markets, categories=categories,
        item_category=item_category, purchases=purchases, matrix=matrix,
        user_market=_user_markets(data, users, markets, purchases),
        start=start, end=end, dropped_unknown_items=dropped,
    )


def _event_matrix(data: CanonicalData, config: TrainConfig, item_map: pl.DataFrame,
                  user_map: pl.DataFrame, end: dt.datetime, shape) -> sp.csr_matrix | None:
    """Views and carts of purchasing customers, weighted and decayed like purchases."""
    weights = {"view": config.view_weight, "cart": config.cart_weight}
    weights = {k: v for k, v in weights.items() if v > 0}
    if data.events is None or not weights:
        return None
    half_life_us = config.half_life_days * 86_400e6
    events = (data.events.filter(pl.col("type").is_in(list(weights)) & (pl.col("ts") <= end))
              .join(item_map, on="item_id", how="inner").join(user_map, on="user_id", how="inner")
              .with_columns(weight=(pl.col("type").replace_strict(weights, return_dtype=pl.Float64)
                                    * pl.lit(0.5).pow((pl.lit(end) - pl.col("ts"))
                                                      .dt.total_microseconds() / half_life_us))
                            .cast(pl.Float32)))
    if events.height == 0:
        return None
    return sp.csr_matrix((events["weight"].to_numpy(),
                          (events["user_idx"].to_numpy(), events["item_idx"].to_numpy())),
                         shape=shape, dtype=np.float32)


def _user_markets(data: CanonicalData, users: Vocabulary, markets: Vocabulary,
                  purchases: pl.DataFrame) -> np.ndarray:
    """Market per user: the customer table's country, else the most frequent purchase country."""
    result = np.full(len(users), -1, dtype=np.int32)
    by_purchase = (purchases.drop_nulls("country").group_by("user_idx", "country").len()
                   .sort(["len", "country"], descending=[True, False])
                   .unique("user_idx", keep="first"))  # ties: the first country by name
    for uidx, country in zip(by_purchase["user_idx"].to_list(), by_purchase["country"].to_list()):
        result[uidx] = markets.index(country)
    if data.customers is not None:
        known = data.customers.drop_nulls("country")
        for uid, country in zip(known["user_id"].to_list(), known["country"].to_list()):
            uidx = users.index(uid)
            if uidx is not None:
                result[uidx] = markets.index(country)
    return result
