"""From canonical tables to indices and weights (training/interactions.py), against a hand-made
shop whose every number is worked out below."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from training.config import TrainConfig
from training.data.schema import CanonicalData, DataError
from training.interactions import build_interactions

END = dt.datetime(2026, 3, 1)


def _shop(purchases: list[tuple]) -> CanonicalData:
    rows = dict(zip(("user_id", "item_id", "days_ago", "returned", "quantity"), zip(*purchases)))
    table = pl.DataFrame({
        "user_id": rows["user_id"], "item_id": rows["item_id"],
        "ts": [END - dt.timedelta(days=d) for d in rows["days_ago"]],
        "returned": rows["returned"], "quantity": rows["quantity"], "price": [10.0] * len(purchases)})
    items = pl.DataFrame({"item_id": ["i2", "i1", "i3"], "category": ["tops", None, "tops"]})
    return CanonicalData("shop", table, items)


def test_ids_become_indices_and_purchases_weights():
    config = TrainConfig(half_life_days=10, returned_weight=0.25)
    data = _shop([("b", "i1", 0, False, 1), ("b", "i1", 10, True, 2), ("a", "i2", 20, False, 1),
                  ("c", "zz", 5, False, 1), ("a", "zz", 1, False, 1), ("b", "i3", 10, False, 3)])
    inter = build_interactions(data, config)
    # customers who bought a catalogue item, sorted; items in catalogue order
    assert inter.users.ids == ["a", "b"] and inter.items.ids == ["i2", "i1", "i3"]
    assert inter.dropped_unknown_items == 2
    assert inter.categories.ids == ["tops", "uncategorised"]
    assert inter.item_category.tolist() == [0, 1, 0]
    expected = np.zeros((2, 3), np.float32)
    expected[1, 1] = 1.0 + 0.5 * 0.25  # today, and 10 days ago (one half-life) returned
    expected[0, 0] = 0.25  # two half-lives ago
    expected[1, 2] = 0.5
    np.testing.assert_allclose(inter.matrix.toarray(), expected, rtol=1e-6)
    p = inter.purchases
    assert p["user_idx"].to_list() == [0, 1, 1, 1]  # by customer, then time
    assert p["ts"].to_list()[1] < p["ts"].to_list()[3]
    assert sorted(zip(p["item_idx"].to_list(), p["quantity"].to_list())) == [
        (0, 1), (1, 1), (1, 2), (2, 3)]
    assert (inter.start, inter.end) == (END - dt.timedelta(days=20), END)


def test_no_purchase_of_a_catalogue_item_is_a_data_error():
    with pytest.raises(DataError, match="no purchase refers to an item in the catalogue"):
        build_interactions(_shop([("a", "zz", 1, False, 1)]), TrainConfig())


def test_purchases_at_the_same_time_keep_the_files_order():
    """Lines of one order share a timestamp: they stay in the order of the file, so that which
    purchases count as a customer's latest (history, size evidence) is the same every run. A
    million lines: large enough for a parallel sort, which need not keep the order of ties."""
    n_users, n_lines = 25_000, 40
    items = [f"i{k}" for k in range(n_lines)]
    order = np.random.default_rng(3).permutation(n_lines)
    rows = n_users * n_lines
    purchases = pl.DataFrame({
        "user_id": pl.Series(np.repeat(np.arange(n_users), n_lines)).cast(pl.String),
        "item_id": pl.Series(np.array(items)[np.tile(order, n_users)]),
        "ts": pl.repeat(END, rows, eager=True), "returned": pl.repeat(False, rows, eager=True),
        "quantity": pl.repeat(1, rows, eager=True), "price": pl.repeat(10.0, rows, eager=True)})
    data = CanonicalData("shop", purchases, pl.DataFrame({"item_id": items}))
    inter = build_interactions(data, TrainConfig())
    expected = np.tile([inter.items.index(items[k]) for k in order], n_users)
    np.testing.assert_array_equal(inter.purchases["item_idx"].to_numpy(), expected)


def test_a_market_from_purchases_is_the_most_frequent_country_ties_by_name():
    purchases = pl.DataFrame({
        "user_id": ["a", "a", "b", "b", "b"], "item_id": ["i1"] * 5, "ts": [END] * 5,
        "country": ["SE", "DE", "FR", "SE", "SE"], "returned": [False] * 5,
        "quantity": [1] * 5, "price": [10.0] * 5})
    data = CanonicalData("shop", purchases, pl.DataFrame({"item_id": ["i1"]}))
    inter = build_interactions(data, TrainConfig())
    assert [inter.markets.ids[m] for m in inter.user_market] == ["DE", "SE"]
