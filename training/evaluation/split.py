"""Time-based train/test split that does not leak the test period into training.

``time_split(data, split_at, test_days)`` trains on every purchase (and event) strictly before
``split_at`` and tests on the purchases in ``[split_at, split_at + test_days)`` (to the end of the
data when ``test_days`` is None).

Filtering rows is not enough: some adapters derive item and customer fields from *all*
purchases (H&M: price, list price and first-seen date; Online Retail: those plus the markets an
item is sold in and each customer's country). :func:`mask_future` recomputes those fields from
the training rows only, with the adapter's own rules, so that no model, filter or baseline can
see what was bought in the test period. For other sources (a shop's canonical export) the item
table is the shop's catalogue and is kept, except that a ``first_seen`` at or after the split
becomes unknown (the item did not exist yet).

Test customers are those with at least one test purchase of a catalogue item (purchases of ids
missing from the catalogue cannot be recommended by anyone and are dropped, as the trainer drops
them). A customer "has history" when they bought a catalogue item before the split.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from training.data.schema import CanonicalData, DataError

#: Item fields each adapter derives from purchases: list-price aggregation and whether the
#: markets (and customer countries) come from purchase countries.
DERIVED = {
    "hm": {"list_price": "max", "markets": False},
    "online_retail": {"list_price": "median", "markets": True},
}


@dataclass
class Split:
    """A train/test split; ``train`` is safe to fit on, the rest describes the test period."""

    train: CanonicalData
    test: pl.DataFrame  # canonical purchases of the test period (catalogue items only)
    split_at: dt.datetime
    test_end: dt.datetime  # exclusive
    actual: dict[str, set[str]] = field(default_factory=dict)  # customer -> items bought
    history: dict[str, int] = field(default_factory=dict)  # test customer -> training purchases
    markets: dict[str, str | None] = field(default_factory=dict)  # test customer -> storefront

    @property
    def users(self) -> list[str]:
        """Test customers, sorted."""
        return sorted(self.actual)

    def with_history(self, user: str) -> bool:
        return self.history.get(user, 0) > 0


def parse_date(text: str, what: str = "date") -> dt.datetime:
    """A ``YYYY-MM-DD`` date (midnight) or ISO datetime as naive UTC, the form of the data's
    timestamps: one with an offset (``2026-06-01T00:00+02:00``) is converted to UTC, one
    without is taken as UTC already. DataError naming ``what`` when ``text`` is neither."""
    try:
        value = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise DataError(f"{what} {text!r} is not a date: expected YYYY-MM-DD, e.g. 2020-09-21")
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def time_split(data: CanonicalData, split_at: dt.datetime, test_days: int | None = None) -> Split:
    """Split ``data`` at ``split_at``; DataError when either side would be empty."""
    if test_days is not None and test_days < 1:
        raise DataError(f"--test-days must be at least 1, got {test_days}")
    start, end = data.purchases["ts"].min(), data.purchases["ts"].max()
    span = f"{data.name} has purchases from {start.date()} to {end.date()}"
    if split_at <= start:
        raise DataError(f"split date {split_at.date()} is not after the first purchase: {span}; "
                        "nothing would be left to train on")
    if split_at > end:
        raise DataError(f"split date {split_at.date()} is after the last purchase: {span}; "
                        "nothing would be left to test on")
    test_end = (split_at + dt.timedelta(days=test_days) if test_days is not None
                else end + dt.timedelta(microseconds=1))
    catalogue = data.items.select("item_id")
    test = (data.purchases.filter((pl.col("ts") >= split_at) & (pl.col("ts") < test_end))
            .join(catalogue, on="item_id", how="semi"))
    if test.height == 0:
        raise DataError(f"no purchases of catalogue items from {split_at.date()} for "
                        f"{test_days or 'all remaining'} day(s): {span}")
    train = mask_future(data.before(split_at), split_at)
    known = train.purchases.join(catalogue, on="item_id", how="semi")
    history = dict(known.group_by("user_id").len().iter_rows())
    grouped = test.group_by("user_id").agg(pl.col("item_id").unique())
    actual = {u: set(items) for u, items in grouped.iter_rows()}
    split = Split(train=train, test=test, split_at=split_at, test_end=test_end, actual=actual,
                  history={u: history.get(u, 0) for u in actual},
                  markets=storefront_markets(test))
    return split


def storefront_markets(test: pl.DataFrame) -> dict[str, str | None]:
    """The market each test customer shopped in (their most frequent test-period country,
    ties alphabetical): the storefront a real request would name. None where unknown."""
    modes = (test.drop_nulls("country").group_by("user_id", "country").len()
             .sort(["user_id", "len", "country"], descending=[False, True, False])
             .unique("user_id", keep="first"))
    found = dict(zip(modes["user_id"].to_list(), modes["country"].to_list()))
    return {u: found.get(u) for u in test["user_id"].unique().to_list()}


def mask_future(train: CanonicalData, split_at: dt.datetime) -> CanonicalData:
    """``train`` (already restricted to rows before ``split_at``) with every purchase-derived
    item and customer field recomputed from its own purchases (see the module docstring)."""
    rules = DERIVED.get(train.name)
    items = train.items
    customers = train.customers
    if rules is None:
        items = items.with_columns(
            pl.when(pl.col("first_seen") < split_at).then(pl.col("first_seen")).alias("first_seen"))
        return CanonicalData(train.name, train.purchases, items, customers, train.events)
    agg = {"max": pl.col("price").max(), "median": pl.col("price").median()}[rules["list_price"]]
    sold = train.purchases.group_by("item_id").agg(
        agg.alias("list_price"),
        pl.col("price").sort_by("ts", maintain_order=True).last().alias("price"),
        pl.col("ts").min().alias("first_seen"),
        pl.col("country").drop_nulls().unique().sort().alias("markets"),
    ).with_columns(
        pl.when(pl.col("markets").list.len() > 0).then(pl.col("markets")).alias("markets"))
    derived = ["list_price", "price", "first_seen"] + (["markets"] if rules["markets"] else [])
    items = (items.drop(derived)
             .join(sold.select("item_id", *derived), on="item_id", how="left",
                   maintain_order="left")
             .select(train.items.columns))
    if rules["markets"] and customers is not None:
        modes = (train.purchases.drop_nulls("country").group_by("user_id", "country").len()
                 .sort(["user_id", "len", "country"], descending=[False, True, False])
                 .unique("user_id", keep="first").select("user_id", "country"))
        customers = (customers.select("user_id").join(train.purchases.select("user_id").unique(),
                                                      on="user_id", how="semi")
                     .join(modes, on="user_id", how="left", maintain_order="left"))
        customers = customers if customers.height else None
    return CanonicalData(train.name, train.purchases, items, customers, train.events)
