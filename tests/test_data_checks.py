"""Checks on the canonical tables that stop bad input before it skews a bundle: future dates,
market ids, duplicate customers, and split dates given with a UTC offset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from training.data import CanonicalData, DataError, load_dataset
from training.data.schema import EVENTS, PURCHASES, conform
from training.evaluation.split import parse_date, time_split

NOW = dt.datetime(2026, 6, 30, 12, 0)
ITEMS_CSV = "item_id,markets\ni1,SE|DE\ni2,\n"
PURCHASES_CSV = "user_id,item_id,ts\nu1,i1,2026-01-02T10:00:00\nu2,i2,2026-01-03\n"


def _canonical(folder: Path, **tables: str) -> Path:
    """A canonical CSV export: the good ``ITEMS_CSV`` and ``PURCHASES_CSV`` unless replaced,
    plus any other ``tables`` given (name -> CSV text)."""
    for name, text in {"items": ITEMS_CSV, "purchases": PURCHASES_CSV, **tables}.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


def test_the_good_export_loads(tmp_path):
    data = load_dataset("canonical", _canonical(tmp_path))
    assert data.purchases.height == 2 and data.items["markets"].to_list() == [["SE", "DE"], None]


# -- dates in the future -----------------------------------------------------------------------

def test_a_purchase_dated_in_the_future_is_refused(tmp_path):
    purchases = PURCHASES_CSV + "u3,i1,2099-07-01T00:39:00\n"
    with pytest.raises(DataError, match=r"purchases\.csv -> purchases: column 'ts' has 1 "
                                        r"datetime\(s\) more than 1 day.*2099-07-01 00:39"):
        load_dataset("canonical", _canonical(tmp_path, purchases=purchases))


def test_an_event_dated_in_the_future_is_refused(tmp_path):
    events = ("user_id,item_id,type,ts\nu1,i1,view,2026-01-02T09:00:00\n"
              "u1,i1,view,2099-01-01T00:00:00\nu1,i2,cart,2099-01-02T00:00:00\n")
    with pytest.raises(DataError, match=r"events\.csv -> events: column 'ts' has 2 "
                                        r"datetime\(s\).*2099-01-01"):
        load_dataset("canonical", _canonical(tmp_path, events=events))


@pytest.mark.parametrize("spec", [PURCHASES, EVENTS], ids=["purchases", "events"])
def test_a_day_of_slack_is_allowed_for_time_zones(spec):
    def table(ts: dt.datetime) -> pl.DataFrame:
        return pl.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "type": ["view"],
                             "ts": [ts]})

    ahead = conform(table(NOW + dt.timedelta(hours=23)), spec, "t.csv", now=NOW)
    assert ahead["ts"].to_list() == [NOW + dt.timedelta(hours=23)]
    with pytest.raises(DataError, match=r"^t\.csv: column 'ts' has 1 datetime"):
        conform(table(NOW + dt.timedelta(hours=25)), spec, "t.csv", now=NOW)


# -- market ids --------------------------------------------------------------------------------

@pytest.mark.parametrize("files,message", [
    ({"items": "item_id,markets\ni1,SE|Great Britain\ni2,\n"},
     r"items\.csv -> items: column 'markets' has 1 value.*not valid ids.*'Great Britain'"),
    ({"customers": "user_id,country\nu1,SE\nu2,DE\nu1,SE\n"},
     r"customers\.csv -> customers: column 'user_id' has 1 value\(s\) on more than one row, "
     r"e\.g\. 'u1'"),
], ids=["a market that is not an id", "a customer listed twice"])
def test_a_bad_table_names_file_column_and_example(tmp_path, files, message):
    with pytest.raises(DataError, match=message):
        load_dataset("canonical", _canonical(tmp_path, **files))


def test_markets_given_as_lists_are_checked_too():
    items = pl.DataFrame({"item_id": ["i1"], "markets": [["GB", "{GB}"]]})
    purchases = pl.DataFrame({"user_id": ["u1"], "item_id": ["i1"],
                              "ts": [dt.datetime(2026, 1, 2)]})
    with pytest.raises(DataError, match=r"shop: items: column 'markets'.*'\{GB\}'"):
        CanonicalData("shop", purchases, items)


# -- duplicate keys ----------------------------------------------------------------------------

def test_duplicate_items_name_an_example():
    purchases = pl.DataFrame({"user_id": ["u1"], "item_id": ["i1"],
                              "ts": [dt.datetime(2026, 1, 2)]})
    with pytest.raises(DataError, match=r"shop: items: column 'item_id'.*e\.g\. 'i2'"):
        CanonicalData("shop", purchases, pl.DataFrame({"item_id": ["i1", "i2", "i2"]}))


# -- split dates with a UTC offset ----------------------------------------------------------------

def test_parse_date_converts_an_offset_to_naive_utc():
    assert parse_date("2026-06-01T00:00+02:00") == dt.datetime(2026, 5, 31, 22, 0)
    assert parse_date("2026-06-01T00:00Z").tzinfo is None
    assert parse_date("2026-06-01") == dt.datetime(2026, 6, 1)


def test_a_split_date_with_an_offset_splits_the_data(tmp_path):
    purchases = ("user_id,item_id,ts\nu1,i1,2026-05-31T21:00:00\nu1,i2,2026-05-31T23:00:00\n"
                 "u2,i1,2026-06-02T00:00:00\n")
    data = load_dataset("canonical", _canonical(tmp_path, purchases=purchases))
    cut = parse_date("2026-06-01T00:00+02:00", "--split-at")
    split = time_split(data, cut)
    assert split.train.purchases["item_id"].to_list() == ["i1"]
    assert split.actual == {"u1": {"i2"}, "u2": {"i1"}}
    assert data.before(parse_date("2026-06-01T00:00+02:00", "--until")).purchases.height == 1
