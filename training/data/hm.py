"""Adapter for H&M Personalized Fashion Recommendations (Kaggle, 2022).

Reads from ``data_dir``:

- articles: ``articles.parquet`` or ``articles.csv`` (the full Kaggle download) - article_id,
  prod_name, product_type_name, index_group_name, section_name
- transactions: ``transactions.parquet`` or ``transactions_train.csv`` - t_dat, customer_id,
  article_id, price, sales_channel_id
- customers (optional): ``customers_sample.csv.gz``, ``customers.csv`` or ``customers.csv.gz`` -
  customer_id

Mapping:

- article ids are zero-padded to 10 digits in both tables (the transactions carry them without
  the leading zero), so purchases join the catalogue.
- purchases: user_id=customer_id, item_id=article id, ts=t_dat (midnight: the data has dates
  only), quantity=1 per row (repeated rows are real repeat purchases and stay separate rows),
  price (scaled as in the original), channel "store"/"online" from sales_channel_id 1/2;
  size, country, returned and fit are unknown (null).
- items: every article of the catalogue (sold or not): name=prod_name,
  category=product_type_name, department=index_group_name; sizes and size system unknown;
  markets null (sold everywhere); sensitive when section_name is "Mama" (maternity) or
  "Womens Lingerie"; list_price = the highest price the article was sold at, price = the price
  of its last transaction (ties on the same day: the last row), first_seen = its first
  transaction date - all three null for articles never sold in the data; in_stock True.
- customers: user_id only; country and consent are unknown (fashion_news_frequency is about
  news mail, not consent to personalisation, so it is not mapped).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from training.data.readers import find_file, find_optional, read_source
from training.data.schema import CUSTOMERS, ITEMS, PURCHASES, CanonicalData, conform

NAME = "hm"
ARTICLE_FILES = ("articles.parquet", "articles.csv")
TRANSACTION_FILES = ("transactions.parquet", "transactions_train.csv")
CUSTOMER_FILES = ("customers_sample.csv.gz", "customers.csv", "customers.csv.gz",
                  "customers.parquet")
SENSITIVE_SECTIONS = ("Mama", "Womens Lingerie")
CHANNELS = {1: "store", 2: "online"}
ID_DIGITS = 10


def _padded(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().str.zfill(ID_DIGITS)


def load(data_dir: str | Path) -> CanonicalData:
    """Load the H&M files in ``data_dir`` as canonical tables (see the module docstring)."""
    data_dir = Path(data_dir)
    articles_path = find_file(data_dir, ARTICLE_FILES, "articles")
    transactions_path = find_file(data_dir, TRANSACTION_FILES, "transactions")
    customers_path = find_optional(data_dir, CUSTOMER_FILES)

    articles = read_source(articles_path, {
        "article_id": "id", "prod_name": "text", "product_type_name": "text",
        "index_group_name": "text", "section_name": "text"})
    transactions = read_source(transactions_path, {
        "t_dat": "datetime", "customer_id": "id", "article_id": "id", "price": "float",
        "sales_channel_id": "int"})

    purchases = transactions.select(
        pl.col("customer_id").alias("user_id"),
        _padded("article_id").alias("item_id"),
        pl.col("t_dat").alias("ts"),
        pl.lit(1, pl.Int32).alias("quantity"),
        pl.col("price"),
        pl.col("sales_channel_id").replace_strict(CHANNELS, default=None, return_dtype=pl.String)
        .alias("channel"),
    )
    purchases = conform(purchases, PURCHASES, f"{transactions_path} -> purchases")

    sold = purchases.group_by("item_id").agg(
        pl.col("price").max().alias("list_price"),
        pl.col("price").sort_by("ts", maintain_order=True).last().alias("price"),
        pl.col("ts").min().alias("first_seen"),
    )
    items = articles.select(
        _padded("article_id").alias("item_id"),
        pl.col("prod_name").alias("name"),
        pl.col("product_type_name").alias("category"),
        pl.col("index_group_name").alias("department"),
        pl.col("section_name").is_in(SENSITIVE_SECTIONS).fill_null(False).alias("sensitive"),
        pl.lit(True).alias("in_stock"),
    ).join(sold, on="item_id", how="left", maintain_order="left")
    items = conform(items, ITEMS, f"{articles_path} -> items")

    customers = None
    if customers_path is not None:
        raw = read_source(customers_path, {"customer_id": "id"})
        customers = conform(raw.select(pl.col("customer_id").alias("user_id")).unique(
            maintain_order=True), CUSTOMERS, f"{customers_path} -> customers")
    return CanonicalData(NAME, purchases, items, customers)
