"""Baselines, fitted on the training side of a :class:`~training.evaluation.split.Split`.

Every baseline sees the same thing: the plain (users x items) matrix of training purchase
counts (one per purchase row, no time decay, no weighting: the textbook input) and the
purchases themselves. Each returns, per test customer, a ranked list of item ids; a customer the
model cannot answer (no history) and a list shorter than ``k`` are filled with the same
last-7-days popularity, so "overall" compares models and not who pads better. Which customers
the model answered itself is reported as ``personal``.

- ``popular_7d``: the most bought items in the 7 days before the split, the same for everyone
  (ties broken by item id).
- ``popular_market``: the same per market (the customer's storefront), topped up from the
  global list; only where the data has more than one market.
- ``als``: ``implicit.als.AlternatingLeastSquares()`` with default parameters (a fixed seed for
  reproducibility), ``filter_already_liked_items=False``.
- ``bm25``: ``implicit.nearest_neighbours.BM25Recommender()`` with default parameters,
  ``filter_already_liked_items=False``.
- ``buy_again``: the customer's own past items, most bought first, then most recent; only where
  the data has repeat purchases.

``filter_already_liked_items=False`` is the fair choice for the implicit models because the
served recommendations may recommend again what a customer bought (in repurchasable categories),
and on these data repeat purchases are a large share of what is bought next; the
``--baseline-filter`` variant of the harness runs them with ``True`` as well.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from training.evaluation.split import Split

POPULAR_DAYS = 7


@dataclass
class TrainView:
    """The training purchases indexed for the baselines (catalogue order for items)."""

    items: list[str]
    users: list[str]
    user_index: dict[str, int]
    counts: sp.csr_matrix  # float32 (users, items): purchase rows
    purchases: pl.DataFrame  # user_idx, item_idx, ts, country


@dataclass
class Answers:
    """Ranked item ids per test customer and the customers the model answered itself."""

    lists: dict[str, list[str]]
    personal: set[str]


def train_view(split: Split) -> TrainView:
    items = split.train.items["item_id"].to_list()
    item_map = pl.DataFrame({"item_id": items, "item_idx": np.arange(len(items), dtype=np.int32)})
    purchases = split.train.purchases.join(item_map, on="item_id", how="inner")
    users = sorted(purchases["user_id"].unique().to_list())
    user_map = pl.DataFrame({"user_id": users, "user_idx": np.arange(len(users), dtype=np.int32)})
    purchases = purchases.join(user_map, on="user_id").select("user_idx", "item_idx", "ts",
                                                               "country")
    counts = sp.csr_matrix((np.ones(purchases.height, np.float32),
                            (purchases["user_idx"].to_numpy(), purchases["item_idx"].to_numpy())),
                           shape=(len(users), len(items)))
    counts.sum_duplicates()
    return TrainView(items, users, {u: i for i, u in enumerate(users)}, counts, purchases)


def has_repeats(view: TrainView) -> bool:
    """True when some customer bought the same item at two different times before the split."""
    distinct = view.purchases.select("user_idx", "item_idx", "ts").unique()
    return distinct.height > distinct.select("user_idx", "item_idx").unique().height


def has_markets(split: Split) -> bool:
    return split.train.purchases["country"].drop_nulls().n_unique() > 1


def _ranked(df: pl.DataFrame, view: TrainView, k: int) -> list[str]:
    top = (df.group_by("item_idx").len()
           .with_columns(item_id=pl.col("item_idx").map_elements(lambda i: view.items[i],
                                                                 return_dtype=pl.String))
           .sort(["len", "item_id"], descending=[True, False]).head(k))
    return top["item_id"].to_list()


def _week(view: TrainView, split: Split) -> pl.DataFrame:
    return view.purchases.filter(pl.col("ts") >= split.split_at - dt.timedelta(days=POPULAR_DAYS))


def popular_list(view: TrainView, split: Split, k: int) -> list[str]:
    return _ranked(_week(view, split), view, k)


def _filled(lists: dict[str, list[str]], users: list[str], fill: list[str], k: int) -> dict:
    out = {}
    for user in users:
        ranked = list(dict.fromkeys(lists.get(user, [])))[:k]
        if len(ranked) < k:
            have = set(ranked)
            ranked += [i for i in fill if i not in have][: k - len(ranked)]
        out[user] = ranked
    return out


def popular_7d(view: TrainView, split: Split, k: int) -> Answers:
    top = popular_list(view, split, k)
    return Answers({u: list(top) for u in split.users}, set(split.users))


def popular_market(view: TrainView, split: Split, k: int) -> Answers:
    week = _week(view, split)
    fill = popular_list(view, split, k)
    per_market = {m: _ranked(week.filter(pl.col("country") == m), view, k)
                  for m in set(split.markets.values()) if m is not None}
    lists = {u: per_market.get(split.markets.get(u), []) for u in split.users}
    return Answers(_filled(lists, split.users, fill, k), set(split.users))


def _known(view: TrainView, split: Split) -> tuple[list[str], np.ndarray]:
    known = [u for u in split.users if u in view.user_index]
    return known, np.asarray([view.user_index[u] for u in known], dtype=np.int64)


def _implicit_answers(model, view: TrainView, split: Split, k: int, filter_liked: bool) -> Answers:
    known, rows = _known(view, split)
    lists: dict[str, list[str]] = {}
    if rows.size:
        ids, scores = model.recommend(rows, view.counts[rows], N=k,
                                      filter_already_liked_items=filter_liked)
        for user, row_ids, row_scores in zip(known, ids, scores):
            valid = (row_ids >= 0) & np.isfinite(row_scores)
            lists[user] = [view.items[i] for i in row_ids[valid].tolist()]
    fill = popular_list(view, split, k)
    return Answers(_filled(lists, split.users, fill, k), {u for u, v in lists.items() if v})


def als(view: TrainView, split: Split, k: int, *, filter_liked: bool = False,
        seed: int = 42) -> Answers:
    from implicit.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(random_state=seed)
        model.fit(view.counts, show_progress=False)
        return _implicit_answers(model, view, split, k, filter_liked)


def bm25(view: TrainView, split: Split, k: int, *, filter_liked: bool = False) -> Answers:
    from implicit.nearest_neighbours import BM25Recommender
    from implicit.utils import ParameterWarning

    model = BM25Recommender()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(view.counts, show_progress=False)
    return _implicit_answers(model, view, split, k, filter_liked)


def buy_again(view: TrainView, split: Split, k: int) -> Answers:
    known, rows = _known(view, split)
    ranked = (view.purchases.filter(pl.col("user_idx").is_in(rows))
              .group_by("user_idx", "item_idx").agg(n=pl.len(), last=pl.col("ts").max())
              .sort(["user_idx", "n", "last", "item_idx"], descending=[False, True, True, False])
              .group_by("user_idx", maintain_order=True).agg(pl.col("item_idx").head(k)))
    by_row = dict(zip(ranked["user_idx"].to_list(), ranked["item_idx"].to_list()))
    lists = {u: [view.items[i] for i in by_row.get(r, [])] for u, r in zip(known, rows.tolist())}
    fill = popular_list(view, split, k)
    return Answers(_filled(lists, split.users, fill, k), {u for u, v in lists.items() if v})
