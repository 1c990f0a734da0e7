"""Data adapters: the synthetic shop, the public datasets, bad input and the canonical form."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from artifacts.ids import is_valid_id
from training.data import DATASETS, CanonicalData, DataError, load_dataset
from training.data.canonical import write_canonical
from training.data.schema import CUSTOMERS, EVENTS, FIT_VALUES, ITEMS, PURCHASES
from training.data.synthetic import (BEHAVIOURS, SIZE_SYSTEMS, generate_shop,
                                     generate_shop_with_truth)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHOP = {"seed": 11, "n_customers": 800, "n_items": 600}
END = dt.date(2026, 6, 30)


def real_data(name: str) -> Path:
    """The public dataset's directory; skipped when absent, except in CI where it must exist."""
    path = DATA / name
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"public dataset {name!r} missing at {path}; CI must provide it")
        pytest.skip(f"public dataset {name!r} not found at {path} (see shared/data/README.md)")
    return path


def schema_of(spec) -> dict[str, pl.DataType]:
    return {c.name: c.dtype for c in spec.values()}


@pytest.fixture(scope="module")
def shop():
    return generate_shop_with_truth(**SHOP)


@pytest.fixture(scope="module")
def fitted(shop):
    """Own (non-gift) purchases with the item's size system, its fit and the kept size."""
    data, truth = shop
    kept = pl.DataFrame(
        [(user, system, size) for user, sizes in truth.kept_sizes.items()
         for system, size in sizes.items()],
        schema=["user_id", "size_system", "kept"], orient="row")
    shift = pl.DataFrame({"item_id": list(truth.item_size_shift),
                          "shift": list(truth.item_size_shift.values())})
    return (data.purchases.with_columns(gift=pl.Series(truth.gift))
            .filter(~pl.col("gift"))
            .join(data.items.select("item_id", "size_system"), on="item_id")
            .join(shift, on="item_id")
            .join(kept, on=["user_id", "size_system"], how="left"))


# -- synthetic shop ------------------------------------------------------------------------------

def test_synthetic_shop_is_deterministic(shop):
    again, truth = generate_shop_with_truth(**SHOP)
    data = shop[0]
    for table in ("purchases", "items", "customers", "events"):
        assert_frame_equal(getattr(data, table), getattr(again, table))
    assert (truth.gift == shop[1].gift).all()
    other = generate_shop(**{**SHOP, "seed": 12})
    assert not other.purchases.equals(data.purchases)


def test_synthetic_shop_conforms_to_the_schema(shop):
    data = shop[0]
    assert dict(data.purchases.schema) == schema_of(PURCHASES)
    assert dict(data.items.schema) == schema_of(ITEMS)
    assert dict(data.customers.schema) == schema_of(CUSTOMERS)
    assert dict(data.events.schema) == schema_of(EVENTS)
    for df, column in ((data.purchases, "user_id"), (data.items, "item_id"),
                       (data.events, "session_id")):
        assert all(is_valid_id(v) for v in df[column].drop_nulls().unique().to_list())
    # every purchase: a catalogue item, in a size on offer, already launched, sold in the market
    joined = data.purchases.join(data.items, on="item_id", how="left", suffix="_item")
    assert joined["name"].null_count() == 0
    assert joined.select(pl.col("sizes").list.contains(pl.col("size")).all()).item()
    assert (joined["ts"] >= joined["first_seen"]).all()
    assert joined.select(pl.col("markets").list.contains(pl.col("country")).all()).item()
    assert data.purchases["ts"].max() < dt.datetime.combine(END + dt.timedelta(days=1), dt.time())
    assert data.events["ts"].max() < dt.datetime.combine(END + dt.timedelta(days=1), dt.time())
    offered = data.items.explode("sizes").drop_nulls("sizes")
    for system, sizes in SIZE_SYSTEMS.items():
        assert offered.filter(pl.col("size_system") == system)["sizes"].is_in(sizes).all()


def test_synthetic_shop_has_what_a_fashion_shop_has(shop):
    data, truth = shop
    items, purchases = data.items, data.purchases
    sensitive = items.filter("sensitive")
    assert set(sensitive["category"].unique()) == {"maternity", "lingerie"}
    assert purchases["item_id"].is_in(sensitive["item_id"].implode()).any()
    on_sale = (items["price"] < items["list_price"]).mean()
    assert 0.12 < on_sale < 0.3
    assert (items["price"] <= items["list_price"]).all()
    assert not items["in_stock"].all()
    assert items["department"].unique().sort().to_list() == ["kids", "men", "women"]
    assert set(items["size_system"].unique()) == set(SIZE_SYSTEMS)
    assert purchases["country"].n_unique() == 5
    assert items.filter(pl.col("markets").list.len() < 5).height > 0  # exclusive collections
    new_arrivals = items.filter(pl.col("first_seen") > dt.datetime.combine(END, dt.time())
                                - dt.timedelta(days=30))
    assert new_arrivals.height > 0
    assert 0.05 < purchases["returned"].mean() < 0.2
    assert 0.5 < purchases["fit"].is_not_null().mean() < 0.7
    assert 0.02 < truth.gift.mean() < 0.08
    assert not purchases.filter(pl.Series(truth.gift))["returned"].any()
    per_customer = purchases.height / data.customers.height
    assert 12 < per_customer < 25
    assert purchases.filter(pl.struct("user_id", "item_id").is_duplicated()).height > 0
    assert 0.9 < data.customers["consent_personalisation"].mean() < 0.99
    assert 0.05 < data.customers["consent_sensitive"].mean() < 0.15
    events = data.events
    assert set(events["type"].unique()) == {"view", "cart"}
    assert events.filter(pl.col("type") == "cart")["size"].null_count() == 0
    assert events["user_id"].null_count() > 0 and events["session_id"].null_count() > 0


def test_returns_follow_the_fit_of_the_item(fitted):
    usual_size_misfit = fitted.filter((pl.col("shift") != 0) & (pl.col("size") == pl.col("kept")))
    assert usual_size_misfit.height > 0
    assert usual_size_misfit["returned"].all()
    expected = pl.when(pl.col("shift") > 0).then(pl.lit("small")).otherwise(pl.lit("large"))
    assert usual_size_misfit.select((pl.col("fit") == expected).all()).item()
    fit_returns = fitted.filter(pl.col("returned") & pl.col("fit").is_in(["small", "large"]))
    assert fit_returns.height == usual_size_misfit.height
    # the size that fits is the kept size moved by the item's fit, and those are kept
    right = fitted.filter((pl.col("shift") != 0) & (pl.col("size") != pl.col("kept")))
    assert right.height > usual_size_misfit.height
    assert right["returned"].mean() < 0.1


def test_customer_behaviours_show_in_purchases(shop):
    data, truth = shop
    end = dt.datetime.combine(END, dt.time(23, 59))
    behaviour = pl.DataFrame({"user_id": list(truth.behaviour),
                              "behaviour": list(truth.behaviour.values())})
    stats = (data.purchases.join(data.items.select("item_id", "list_price", "first_seen"),
                                 on="item_id")
             .group_by("user_id").agg(
                 orders=pl.col("ts").n_unique(),
                 on_sale=(pl.col("price") < pl.col("list_price")).mean(),
                 fresh=((pl.col("ts") - pl.col("first_seen")).dt.total_days() < 30).mean(),
                 idle_days=(pl.lit(end) - pl.col("ts").max()).dt.total_days())
             .join(behaviour, on="user_id", how="right"))
    mean = {row["behaviour"]: row for row in stats.group_by("behaviour").agg(
        pl.col("on_sale", "fresh").mean(), pl.col("orders").fill_null(0).mean(),
        pl.col("orders").fill_null(0).max().alias("max_orders"),
        pl.col("idle_days").min().alias("min_idle")).to_dicts()}
    assert set(mean) == set(BEHAVIOURS)
    assert mean["discount_hunter"]["on_sale"] > 0.5 > 3 * mean["regular"]["on_sale"] / 2
    assert mean["trend_seeker"]["fresh"] > 0.35 > 3 * mean["regular"]["fresh"]
    assert mean["trend_seeker"]["on_sale"] < 0.05
    assert mean["vip"]["orders"] > 2 * mean["regular"]["orders"]
    assert mean["new"]["max_orders"] <= 1
    assert mean["lapsing"]["min_idle"] > 150


def test_load_dataset_dispatch_and_errors(tmp_path):
    assert DATASETS == ("synthetic", "hm", "online_retail", "renttherunway", "canonical")
    data = load_dataset("synthetic", n_customers=50, n_items=100, seed=1)
    assert isinstance(data, CanonicalData) and data.customers.height == 50
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(DataError, match="needs a data directory"):
        load_dataset("hm")
    missing = tmp_path / "absent"
    with pytest.raises(DataError, match=f"{missing}: no such directory"):
        load_dataset("online_retail", missing)
    with pytest.raises(DataError, match="articles.parquet, articles.csv"):
        load_dataset("hm", tmp_path)
    with pytest.raises(DataError, match="reads no files"):
        load_dataset("synthetic", tmp_path)


# -- the public datasets ------------------------------------------------------------------------

@pytest.mark.realdata
def test_hm_loads_the_whole_catalogue():
    path = real_data("hm")
    data = load_dataset("hm", path)
    items, purchases = data.items, data.purchases
    assert items.height == 105_542
    assert items["item_id"].str.contains(r"^0\d{9}$").all()
    assert purchases["item_id"].str.len_chars().eq(10).all()
    assert purchases["item_id"].is_in(items["item_id"].implode()).all()
    mama = pl.read_parquet(path / "articles.parquet", columns=["article_id", "section_name"])
    mama = mama.filter(pl.col("section_name") == "Mama")["article_id"]
    assert mama.len() > 0
    assert items.filter(pl.col("item_id").is_in(mama.implode()))["sensitive"].all()
    assert items.filter(~pl.col("item_id").is_in(mama.implode()))["sensitive"].any()  # lingerie
    sold = items.filter(pl.col("first_seen").is_not_null())
    assert sold.height == purchases["item_id"].n_unique()
    assert (sold["price"] <= sold["list_price"]).all()
    assert set(purchases["channel"].unique()) == {"store", "online"}
    assert purchases["quantity"].eq(1).all()
    assert data.customers is not None and data.customers.height > 0


@pytest.mark.realdata
def test_online_retail_marks_cancellations_as_returns():
    path = real_data("online_retail")
    data = load_dataset("online_retail", path)
    purchases = data.purchases
    assert purchases["user_id"].str.contains(r"^\d+$").all()  # no guests, no "17850.0"
    assert (purchases["quantity"] > 0).all() and (purchases["price"] > 0).all()
    assert purchases["item_id"].str.contains(r"^\d{5}").all()
    assert 0 < purchases["returned"].mean() < 0.2
    raw = pl.read_parquet(path / "online_retail.parquet")
    cancelled = (raw.filter(pl.col("InvoiceNo").str.starts_with("C")
                            & pl.col("CustomerID").is_not_null())
                 .select(pl.col("CustomerID").cast(pl.Int64).cast(pl.String).alias("user_id"),
                         pl.col("StockCode").str.to_uppercase().alias("item_id"),
                         pl.col("InvoiceDate").alias("cancelled_at")))
    earlier = (purchases.join(cancelled, on=["user_id", "item_id"])
               .filter(pl.col("ts") <= pl.col("cancelled_at")))
    assert earlier.height > 0 and earlier["returned"].all()
    countries = purchases["country"].drop_nulls().unique()
    assert countries.len() > 30 and "GB" in countries
    assert all(is_valid_id(c) for c in countries)
    assert data.items["markets"].list.len().min() >= 1
    assert data.customers["country"].null_count() < 10


@pytest.mark.realdata
def test_renttherunway_has_sizes_and_fit():
    data = load_dataset("renttherunway", real_data("renttherunway"))
    purchases, items = data.purchases, data.items
    assert purchases["size"].null_count() == 0
    assert set(purchases["fit"].unique()) == set(FIT_VALUES)
    assert items["size_system"].eq("rtr").all() and items["department"].eq("women").all()
    numeric = items["sizes"].list.eval(pl.element().cast(pl.Int64))
    assert (numeric == numeric.list.sort()).all()
    assert items.select(pl.col("sizes").list.len().min()).item() >= 1
    joined = purchases.join(items, on="item_id")
    assert joined.select(pl.col("sizes").list.contains(pl.col("size")).all()).item()
    assert items["category"].null_count() == 0


# -- bad input --------------------------------------------------------------------------------

def _hm_files(directory: Path, **replace: pl.DataFrame) -> Path:
    articles = pl.DataFrame({"article_id": ["0108775015", "0108775044"],
                             "prod_name": ["Strap top", "Strap top"],
                             "product_type_name": ["Vest top", "Vest top"],
                             "index_group_name": ["Ladieswear", "Ladieswear"],
                             "section_name": ["Mama", "Womens Everyday Basics"]})
    transactions = pl.DataFrame({"t_dat": [dt.date(2020, 9, 16)], "customer_id": ["a1"],
                                 "article_id": ["108775044"], "price": [0.05],
                                 "sales_channel_id": [2]})
    replace.get("articles", articles).write_parquet(directory / "articles.parquet")
    replace.get("transactions", transactions).write_parquet(directory / "transactions.parquet")
    return directory


def test_tiny_hm_export_loads(tmp_path):
    data = load_dataset("hm", _hm_files(tmp_path))
    assert data.items["item_id"].to_list() == ["0108775015", "0108775044"]
    assert data.items["sensitive"].to_list() == [True, False]
    assert data.purchases["item_id"].to_list() == ["0108775044"]
    assert data.customers is None


def test_missing_column_names_the_file_and_column(tmp_path):
    articles = pl.DataFrame({"article_id": ["0108775015"], "prod_name": ["Strap top"],
                             "product_type_name": ["Vest top"],
                             "index_group_name": ["Ladieswear"]})
    _hm_files(tmp_path, articles=articles)
    with pytest.raises(DataError, match=r"articles\.parquet: missing required column.*"
                                        r"'section_name'"):
        load_dataset("hm", tmp_path)


def test_wrong_type_names_the_file_and_column(tmp_path):
    transactions = pl.DataFrame({"t_dat": [dt.date(2020, 9, 16)], "customer_id": ["a1"],
                                 "article_id": ["108775044"], "price": ["cheap"],
                                 "sales_channel_id": [2]})
    _hm_files(tmp_path, transactions=transactions)
    with pytest.raises(DataError, match=r"transactions\.parquet: column 'price' has 1 value.*"
                                        r"'cheap'"):
        load_dataset("hm", tmp_path)


def _online_retail_csv(folder, second_row: str) -> None:
    """An Online Retail file of a good row and ``second_row``."""
    (folder / "online_retail.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
        f"{second_row}\n")


def test_bad_date_in_csv_names_the_file_and_column(tmp_path):
    _online_retail_csv(tmp_path, "536366,71053,WHITE LANTERN,6,soon,3.39,17850,United Kingdom")
    with pytest.raises(DataError, match=r"online_retail\.csv: column 'InvoiceDate'.*'soon'"):
        load_dataset("online_retail", tmp_path)


def test_online_retail_customer_ids_must_be_whole_numbers(tmp_path):
    _online_retail_csv(tmp_path,
                       "536366,71053,WHITE LANTERN,6,12/1/2010 8:28,3.39,12583.5,United Kingdom")
    with pytest.raises(DataError, match=r"online_retail\.csv: column 'CustomerID'.*12583\.5"):
        load_dataset("online_retail", tmp_path)


def test_online_retail_drops_rows_without_a_price(tmp_path):
    _online_retail_csv(tmp_path,
                       "536366,71053,WHITE LANTERN,6,12/1/2010 8:28,NaN,17850,United Kingdom")
    data = load_dataset("online_retail", tmp_path)
    assert data.purchases["item_id"].to_list() == ["85123A"]


def test_online_retail_csv_with_month_first_dates(tmp_path):
    (tmp_path / "online_retail.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123a,WHITE HEART,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n"
        "536366,POST,POSTAGE,1,12/1/2010 8:28,18.0,17850.0,United Kingdom\n"
        "536367,85123A,Unknown,2,12/2/2010 9:00,2.75,,United Kingdom\n"
        "C536368,85123A,WHITE HEART,-1,12/3/2010 10:00,2.55,17850.0,United Kingdom\n")
    data = load_dataset("online_retail", tmp_path)
    row = data.purchases.row(0, named=True)
    assert data.purchases.height == 1
    assert (row["user_id"], row["item_id"], row["country"]) == ("17850", "85123A", "GB")
    assert row["ts"] == dt.datetime(2010, 12, 1, 8, 26) and row["returned"] is True
    assert data.items["name"].to_list() == ["WHITE HEART"]


def test_online_retail_csv_with_day_first_dates(tmp_path):
    """One format for the whole column: 13/12 can only be day-first, so 01/12 is too."""
    (tmp_path / "online_retail.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HEART,6,01/12/2010 08:26,2.55,17850,United Kingdom\n"
        "536366,71053,WHITE LANTERN,6,13/12/2010 09:00,3.39,17850,United Kingdom\n")
    data = load_dataset("online_retail", tmp_path)
    assert data.purchases["ts"].to_list() == [dt.datetime(2010, 12, 1, 8, 26),
                                              dt.datetime(2010, 12, 13, 9, 0)]


def test_online_retail_csv_mixing_date_orders_is_refused(tmp_path):
    """12/13 reads only month-first and 13/12 only day-first: no one format reads both."""
    (tmp_path / "online_retail.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HEART,6,12/13/2010 8:26,2.55,17850,United Kingdom\n"
        "536366,71053,WHITE LANTERN,6,13/12/2010 9:00,3.39,17850,United Kingdom\n")
    with pytest.raises(DataError, match=r"online_retail\.csv: column 'InvoiceDate' has 1 value.*"
                                        r"one format.*tried ISO 8601, %m/%d/%Y %H:%M.*"
                                        r"%d/%m/%Y %H:%M:%S.*'13/12/2010 9:00'"):
        load_dataset("online_retail", tmp_path)


def test_empty_files_are_refused(tmp_path):
    (tmp_path / "renttherunway.csv").write_text("")
    with pytest.raises(DataError, match=r"renttherunway\.csv: the file is empty"):
        load_dataset("renttherunway", tmp_path)
    header_only = tmp_path / "header"
    header_only.mkdir()
    (header_only / "renttherunway.csv").write_text(
        "user_id,item_id,size,fit,category,review_date\n")
    with pytest.raises(DataError, match=r"renttherunway\.csv: the file has no rows"):
        load_dataset("renttherunway", header_only)


def test_bad_canonical_csv_names_the_file_and_column(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,sizes\ni1,S|M\n")
    (tmp_path / "purchases.csv").write_text("user_id,item_id,ts\nu1,i1,yesterday\n")
    with pytest.raises(DataError, match=r"purchases\.csv: column 'ts'.*'yesterday'"):
        load_dataset("canonical", tmp_path)
    (tmp_path / "purchases.csv").write_text("user_id,item_id,ts,quantity\nu1,i1,2026-01-02,two\n")
    with pytest.raises(DataError, match=r"purchases\.csv: column 'quantity'.*'two'"):
        load_dataset("canonical", tmp_path)
    (tmp_path / "purchases.csv").write_text("user,item_id,ts\nu1,i1,2026-01-02\n")
    with pytest.raises(DataError, match=r"purchases\.csv: missing required column.*'user_id'"):
        load_dataset("canonical", tmp_path)
    (tmp_path / "purchases.csv").write_text("user_id,item_id,ts\nu 1,i1,2026-01-02\n")
    with pytest.raises(DataError, match=r"purchases\.csv -> purchases: column 'user_id'.*"
                                        r"not valid ids.*'u 1'"):
        load_dataset("canonical", tmp_path)


# -- canonical form ------------------------------------------------------------------------------

def test_canonical_round_trip(shop, tmp_path):
    data = shop[0]
    out = write_canonical(data, tmp_path / "export")
    back = load_dataset("canonical", out, name="synthetic")
    for table in ("purchases", "items", "customers", "events"):
        assert_frame_equal(getattr(back, table), getattr(data, table))
    without_events = CanonicalData("synthetic", data.purchases, data.items, data.customers)
    write_canonical(without_events, out)
    assert load_dataset("canonical", out).events is None


def test_canonical_csv_is_parsed_to_the_schema(tmp_path):
    (tmp_path / "items.csv").write_text(
        "item_id,name,sizes,markets,list_price,price,first_seen,sensitive,in_stock\n"
        "i1,Linen shirt,S|M|L,SE|DE,29.99,19.99,2026-03-01,false,true\n"
        "i2,Scarf,,,9.99,9.99,2026-03-02T10:00:00,0,1\n")
    (tmp_path / "purchases.csv").write_text(
        "user_id,item_id,ts,quantity,price,size,returned,fit,extra\n"
        "u1,i1,2026-03-05 12:30:00,1,19.99,M,true,small,x\n"
        "u1,i2,2026-03-05T12:30:00+02:00,2,9.99,,,,y\n")
    data = load_dataset("canonical", tmp_path)
    assert dict(data.items.schema) == schema_of(ITEMS)
    assert dict(data.purchases.schema) == schema_of(PURCHASES)
    assert data.items["sizes"].to_list() == [["S", "M", "L"], None]
    assert data.items["markets"].to_list() == [["SE", "DE"], None]
    assert data.items["sensitive"].to_list() == [False, False]
    assert data.purchases["ts"].to_list() == [dt.datetime(2026, 3, 5, 12, 30),
                                              dt.datetime(2026, 3, 5, 10, 30)]
    assert data.purchases["returned"].to_list() == [True, None]
    assert data.customers is None and data.events is None
