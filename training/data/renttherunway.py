"""Adapter for RentTheRunway clothing fit (Misra, Wan, McAuley, RecSys 2018): sizes and fit.

Reads ``renttherunway.parquet`` (or ``renttherunway.csv``) from ``data_dir``, with the columns
user_id, item_id, size, fit, category, review_date. Rows with no review_date, user_id or
item_id are dropped.

Mapping (each rental, with its review, is one purchase):

- purchases: user_id and item_id as text, ts=review_date (the rental date is not in the data;
  the review follows it), quantity 1, size = the numeric size as text ("8"), fit = the fit
  column (small/fit/large: how the rented size fitted), price, country, channel and returned
  null (every rental goes back; a rental is not a return).
- items: one row per item_id: category = its most frequent category (ties: alphabetical
  first), department "women", size_system "rtr" (numeric sizes 0..58), sizes = the distinct
  sizes rented, ordered numerically, as text; first_seen = its first review date; name and
  prices null (the data has none); markets null (everywhere); in_stock True, sensitive False.
- no customer table.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from training.data.readers import find_file, read_source
from training.data.schema import ITEMS, PURCHASES, CanonicalData, conform

NAME = "renttherunway"
FILES = ("renttherunway.parquet", "renttherunway.csv")
SIZE_SYSTEM = "rtr"
DEPARTMENT = "women"


def load(data_dir: str | Path) -> CanonicalData:
    """Load RentTheRunway from ``data_dir`` as canonical tables (see the module docstring)."""
    path = find_file(Path(data_dir), FILES, "RentTheRunway")
    raw = read_source(path, {"user_id": "id", "item_id": "id", "size": "int", "fit": "text",
                             "category": "text", "review_date": "datetime"})
    rows = raw.drop_nulls(["review_date", "user_id", "item_id"])
    purchases = conform(rows.select(
        "user_id", "item_id", pl.col("review_date").alias("ts"),
        pl.lit(1, pl.Int32).alias("quantity"),
        pl.col("size").cast(pl.String).alias("size"),
        pl.col("fit").str.strip_chars().str.to_lowercase().alias("fit"),
    ), PURCHASES, f"{path} -> purchases")

    categories = (rows.drop_nulls("category").group_by("item_id", "category").len()
                  .sort(["item_id", "len", "category"], descending=[False, True, False])
                  .unique("item_id", keep="first", maintain_order=True)
                  .select("item_id", "category"))
    items = (rows.group_by("item_id").agg(
        pl.col("size").drop_nulls().unique().sort().cast(pl.String).alias("sizes"),
        pl.col("review_date").min().alias("first_seen"),
    ).sort("item_id")
        .join(categories, on="item_id", how="left", maintain_order="left")
        .with_columns(pl.lit(DEPARTMENT).alias("department"),
                      pl.lit(SIZE_SYSTEM).alias("size_system")))
    items = conform(items, ITEMS, f"{path} -> items")
    return CanonicalData(NAME, purchases, items)
