"""Canonical table checks: bad values stop with a message naming the table and the column."""

import datetime as dt

import polars as pl
import pytest

from training.data.schema import PURCHASES, CanonicalData, DataError, conform

OK = {"user_id": ["u1"], "item_id": ["i1"], "ts": [dt.datetime(2026, 1, 1)]}


def _purchases(**columns):
    return pl.DataFrame({**OK, **columns})


def test_conform_adds_defaults_and_orders_columns():
    out = conform(_purchases(), PURCHASES, "p.parquet")
    assert out.columns == list(PURCHASES)
    assert out["quantity"].to_list() == [1]


@pytest.mark.parametrize("columns,message", [
    ({"ts": [1_600_000_000]}, "'ts' holds numbers"),
    ({"ts": ["yesterday"]}, "'ts' has 1 value(s) that are not datetimes"),
    ({"quantity": [1.5]}, "'quantity' has fractional values"),
    ({"quantity": ["two"]}, "'quantity' has type"),
    ({"user_id": ["has space"]}, "'user_id' has 1 value(s) that are not valid ids"),
    ({"item_id": ["{i1}"]}, "'item_id'"),
    ({"country": ["United Kingdom"]}, "'country'"),
    ({"fit": ["huge"]}, "'fit'"),
])
def test_bad_values_name_file_and_column(columns, message):
    with pytest.raises(DataError) as err:
        conform(_purchases(**columns), PURCHASES, "p.parquet")
    assert str(err.value).startswith("p.parquet: ")
    assert message in str(err.value)


def test_text_timestamps_are_parsed():
    out = conform(_purchases(ts=["2026-01-02 10:00:00"]), PURCHASES, "p.csv")
    assert out["ts"].to_list() == [dt.datetime(2026, 1, 2, 10)]


def test_missing_column_and_empty_table():
    with pytest.raises(DataError, match="missing required column.*'ts'"):
        conform(pl.DataFrame({"user_id": ["u"], "item_id": ["i"]}), PURCHASES, "p.parquet")
    with pytest.raises(DataError, match="empty"):
        conform(_purchases().clear(), PURCHASES, "p.parquet")


def test_before_drops_later_rows_and_refuses_an_empty_past():
    data = CanonicalData("t", pl.DataFrame({
        "user_id": ["u1", "u1"], "item_id": ["i1", "i2"],
        "ts": [dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1)]}),
        pl.DataFrame({"item_id": ["i1", "i2"]}))
    assert data.before(dt.datetime(2026, 1, 15)).purchases["item_id"].to_list() == ["i1"]
    with pytest.raises(DataError, match="no purchases before"):
        data.before(dt.datetime(2025, 1, 1))
