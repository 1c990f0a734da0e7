"""Adapter for UCI Online Retail (Chen, Sain, Guo 2012): a UK gift retailer with countries.

Reads ``online_retail.parquet`` (or ``online_retail.csv``; its InvoiceDate may be ISO, the
month-first ``12/1/2010 8:26`` of the original export or a day-first ``01/12/2010 08:26``, one
form for the whole file: month-first wins when both read every date) from ``data_dir``, with
the columns InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID,
Country.

Cleaning, in this order:

- guest rows (null CustomerID) and rows with Quantity 0 or UnitPrice <= 0 are dropped;
- StockCode is stripped and upper-cased (``84660c`` and ``84660C`` are one product); only codes
  that start with five digits are products (``22423``, ``85123A``, ``15056BL``): this drops
  postage, carriage, fees, discounts, manual adjustments, samples, bank charges, gift vouchers
  (POST, DOT, C2, M, D, S, B, CRUK, AMAZONFEE, PADS, BANK CHARGES, DCGS..., GIFT_0001_...).
  A few numeric codes are still services (e.g. "PACKING CHARGE"); they are kept.

Mapping:

- user_id = the CustomerID as a whole number in text (17850.0 -> "17850"); item_id = StockCode.
- purchases = rows with Quantity > 0 whose InvoiceNo does not start with "C": ts=InvoiceDate,
  quantity, price=UnitPrice, country=Country as a market code (below), channel null, fit null.
- returns: a cancellation (InvoiceNo starting with "C", or a negative Quantity) does not match a
  purchase line in the data, so the rule is approximate: a purchase is ``returned`` when the
  same customer has a cancellation of the same StockCode at or after the purchase time;
  otherwise ``returned`` is False. A partial cancellation marks the whole purchase line.
  Cancellation rows themselves are not purchases.
- Country names become ISO 3166-1 alpha-2 codes (United Kingdom -> GB, EIRE -> IE, RSA -> ZA,
  USA -> US, European Community -> EU) because markets are ids across the system (no spaces);
  "Unspecified" becomes null; a name with no code is kept as an upper-case slug
  (Channel Islands -> CHANNEL-ISLANDS).
- items: one row per product code among the purchases: name = its most frequent Description
  other than "Unknown" (ties: alphabetical first), category and department null (the data has
  none), list_price = median unit price, price = unit price of its last sale, first_seen =
  first sale, markets = sorted codes of the countries it was sold to (null, i.e. everywhere,
  when none is known), in_stock True, sensitive False, no sizes.
- customers: user_id, country = the customer's most frequent purchase country (ties:
  alphabetical first).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from training.data.readers import find_file, read_source
from training.data.schema import (CUSTOMERS, ITEMS, PURCHASES, CanonicalData, DataError,
                                  conform)

NAME = "online_retail"
FILES = ("online_retail.parquet", "online_retail.csv")
PRODUCT_CODE = r"^[0-9]{5}[A-Z0-9]*$"
UNKNOWN_DESCRIPTION = "Unknown"
DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S")
COUNTRY_CODES = {
    "Australia": "AU", "Austria": "AT", "Bahrain": "BH", "Belgium": "BE", "Bermuda": "BM",
    "Brazil": "BR", "Canada": "CA", "Cyprus": "CY", "Czech Republic": "CZ", "Denmark": "DK",
    "EIRE": "IE", "European Community": "EU", "Finland": "FI", "France": "FR",
    "Germany": "DE", "Greece": "GR", "Hong Kong": "HK", "Iceland": "IS", "Israel": "IL",
    "Italy": "IT", "Japan": "JP", "Korea": "KR", "Lebanon": "LB", "Lithuania": "LT",
    "Malta": "MT", "Netherlands": "NL", "Nigeria": "NG", "Norway": "NO", "Poland": "PL",
    "Portugal": "PT", "RSA": "ZA", "Saudi Arabia": "SA", "Singapore": "SG", "Spain": "ES",
    "Sweden": "SE", "Switzerland": "CH", "Thailand": "TH", "United Arab Emirates": "AE",
    "United Kingdom": "GB", "USA": "US", "Unspecified": None,
}


def _market(column: str) -> pl.Expr:
    name = pl.col(column).str.strip_chars()
    slug = name.str.to_uppercase().str.replace_all(r"[^A-Z0-9]+", "-").str.strip_chars("-")
    known = name.replace_strict(COUNTRY_CODES, default=None, return_dtype=pl.String)
    return (pl.when(name.is_in(list(COUNTRY_CODES))).then(known)
            .when(slug != "").then(slug).otherwise(None))


def _modes(df: pl.DataFrame, key: str, value: str) -> pl.DataFrame:
    """Most frequent non-null ``value`` per ``key``; ties go to the alphabetically first."""
    return (df.drop_nulls(value).group_by(key, value).len()
            .sort([key, "len", value], descending=[False, True, False])
            .unique(key, keep="first", maintain_order=True).drop("len"))


def load(data_dir: str | Path) -> CanonicalData:
    """Load UCI Online Retail from ``data_dir`` as canonical tables (see the module docstring)."""
    path = find_file(Path(data_dir), FILES, "Online Retail")
    raw = read_source(path, {
        "InvoiceNo": "text", "StockCode": "text", "Description": "text", "Quantity": "int",
        "InvoiceDate": "datetime", "UnitPrice": "float", "CustomerID": "float",
        "Country": "text"}, datetime_formats=DATE_FORMATS)

    customer = pl.col("CustomerID")
    odd = raw.filter(customer.is_not_null() & (customer.is_nan() | customer.is_infinite()
                                               | (customer != customer.round(0))
                                               | (customer.abs() >= 2.0**53)))
    if odd.height:
        examples = ", ".join(map(str, odd["CustomerID"].unique().head(3).to_list()))
        raise DataError(f"{path.name}: column 'CustomerID' holds {odd.height} value(s) that are "
                        f"not whole customer numbers (e.g. {examples})")
    rows = raw.with_columns(
        pl.col("StockCode").str.strip_chars().str.to_uppercase().alias("item_id"),
        customer.cast(pl.Int64).cast(pl.String).alias("user_id"),
        pl.col("InvoiceNo").str.strip_chars().str.to_uppercase().str.starts_with("C")
        .fill_null(False).alias("cancelled"),
        _market("Country").alias("country"),
    ).filter(
        pl.col("user_id").is_not_null() & (pl.col("Quantity") != 0)
        & (pl.col("UnitPrice") > 0) & pl.col("UnitPrice").is_finite()
        & pl.col("item_id").str.contains(PRODUCT_CODE)
    )
    is_cancellation = pl.col("cancelled") | (pl.col("Quantity") < 0)
    last_cancel = (rows.filter(is_cancellation).group_by("user_id", "item_id")
                   .agg(pl.col("InvoiceDate").max().alias("cancelled_at")))
    sales = (rows.filter(~is_cancellation)
             .join(last_cancel, on=["user_id", "item_id"], how="left", maintain_order="left")
             .with_columns((pl.col("cancelled_at") >= pl.col("InvoiceDate")).fill_null(False)
                           .alias("returned")))
    purchases = conform(sales.select(
        "user_id", "item_id", pl.col("InvoiceDate").alias("ts"),
        pl.col("Quantity").alias("quantity"), pl.col("UnitPrice").alias("price"),
        "country", "returned",
    ), PURCHASES, f"{path} -> purchases")

    names = _modes(sales.filter(pl.col("Description").str.strip_chars() != UNKNOWN_DESCRIPTION)
                   .select("item_id", pl.col("Description").str.strip_chars()),
                   "item_id", "Description").rename({"Description": "name"})
    items = (purchases.group_by("item_id", maintain_order=True).agg(
        pl.col("price").median().alias("list_price"),
        pl.col("price").sort_by("ts", maintain_order=True).last().alias("price"),
        pl.col("ts").min().alias("first_seen"),
        pl.col("country").drop_nulls().unique().sort().alias("markets"),
    ).join(names, on="item_id", how="left", maintain_order="left")
        .sort("item_id")
        .with_columns(
            pl.when(pl.col("markets").list.len() > 0).then(pl.col("markets")).alias("markets"),
            pl.lit(False).alias("sensitive"), pl.lit(True).alias("in_stock")))
    items = conform(items, ITEMS, f"{path} -> items")

    customers = _modes(purchases.select("user_id", "country"), "user_id", "country")
    customers = (purchases.select("user_id").unique().sort("user_id")
                 .join(customers, on="user_id", how="left", maintain_order="left"))
    customers = conform(customers, CUSTOMERS, f"{path} -> customers")
    return CanonicalData(NAME, purchases, items, customers)
