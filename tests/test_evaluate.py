"""The evaluation harness: the split (no test purchase leaks into training), baselines on
hand-checked cases, the table, JSON and report, and the command's errors."""

import datetime as dt
import json

import polars as pl
import pytest

from training.cli import main
from training.config import TrainConfig
from training.data.canonical import write_canonical
from training.data.schema import CanonicalData, DataError
from training.evaluation import baselines
from training.evaluation.harness import GROUPS, SERVED, evaluate
from training.evaluation.report import format_table, write_json, write_report
from training.evaluation.served import served_answers
from training.evaluation.split import parse_date, time_split

SPLIT = dt.datetime(2026, 1, 10)
SMALL = TrainConfig(factors=8, iterations=3, candidates=30, neighbours=10)


def _day(d: int, h: int = 12) -> dt.datetime:
    return dt.datetime(2026, 1, d, h)


def _tiny(name: str = "online_retail") -> CanonicalData:
    """Three customers; item z exists only from the test period, at a new price and country."""
    rows = [  # user, item, day, price, country
        ("u1", "a", 2, 1.0, "GB"), ("u1", "b", 3, 2.0, "GB"), ("u1", "a", 6, 1.0, "GB"),
        ("u2", "a", 5, 3.0, "GB"), ("u2", "c", 8, 4.0, "GB"), ("u2", "b", 9, 2.0, "GB"),
        ("u3", "c", 4, 4.0, "GB"), ("u3", "b", 7, 2.0, "DE"),
        # test period
        ("u1", "a", 10, 9.0, "FR"), ("u1", "z", 11, 7.0, "FR"), ("u4", "z", 12, 7.0, "DE"),
        ("u2", "c", 15, 4.0, "GB"),
    ]
    purchases = pl.DataFrame({
        "user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
        "ts": [_day(r[2]) for r in rows], "price": [r[3] for r in rows],
        "country": [r[4] for r in rows]})
    sold = purchases.group_by("item_id").agg(
        pl.col("price").max().alias("list_price"), pl.col("price").last().alias("price"),
        pl.col("ts").min().alias("first_seen"),
        pl.col("country").unique().sort().alias("markets"))
    items = pl.DataFrame({"item_id": ["a", "b", "c", "z"], "name": ["A", "B", "C", "Z"]}).join(
        sold, on="item_id", how="left")
    customers = pl.DataFrame({"user_id": ["u1", "u2", "u3", "u4"],
                              "country": ["FR", "GB", "GB", "DE"]})
    return CanonicalData(name, purchases, items, customers)


def test_split_keeps_the_test_period_out_of_training():
    split = time_split(_tiny(), SPLIT, test_days=3)
    train = split.train
    assert train.purchases["ts"].max() < SPLIT
    assert split.test["ts"].min() >= SPLIT and split.test["ts"].max() < split.test_end
    assert split.test_end == SPLIT + dt.timedelta(days=3)
    assert split.actual == {"u1": {"a", "z"}, "u4": {"z"}}  # u2's purchase on day 15 is later
    assert split.history == {"u1": 3, "u4": 0}
    assert split.markets == {"u1": "FR", "u4": "DE"}
    items = {r["item_id"]: r for r in train.items.iter_rows(named=True)}
    # item fields derived from purchases are recomputed from the training rows only
    assert items["a"]["price"] == 1.0 and items["a"]["list_price"] == pytest.approx(1.0)  # not 9
    assert items["a"]["markets"] == ["GB"] and items["a"]["first_seen"] == _day(2)
    assert items["z"]["price"] is None and items["z"]["first_seen"] is None
    assert items["z"]["markets"] is None
    assert items["b"]["markets"] == ["DE", "GB"]
    # customers' countries too: u1 bought only in GB before the split (FR after); u4 not at
    # all; u3 once in DE and once in GB (ties: alphabetical)
    countries = dict(train.customers.select("user_id", "country").iter_rows())
    assert countries == {"u1": "GB", "u2": "GB", "u3": "DE"}


def test_split_of_other_sources_masks_future_first_seen():
    split = time_split(_tiny(name="shop"), SPLIT)
    items = {r["item_id"]: r for r in split.train.items.iter_rows(named=True)}
    assert items["z"]["first_seen"] is None and items["a"]["first_seen"] == _day(2)
    assert items["z"]["price"] == 7.0  # the shop's own catalogue attribute is kept
    assert split.actual["u2"] == {"c"}  # to the end of the data by default


@pytest.mark.parametrize("split_at,days,message", [
    (dt.datetime(2026, 1, 1), None, "not after the first purchase"),
    (dt.datetime(2026, 2, 1), None, "after the last purchase"),
    (dt.datetime(2026, 1, 13), 2, "no purchases of catalogue items from 2026-01-13"),
    (SPLIT, 0, "--test-days must be at least 1"),
])
def test_split_errors_name_the_problem(split_at, days, message):
    with pytest.raises(DataError, match=message):
        time_split(_tiny(), split_at, days)


def test_parse_date_error():
    assert parse_date("2020-09-21") == dt.datetime(2020, 9, 21)
    with pytest.raises(DataError, match="'21/09/2020' is not a date"):
        parse_date("21/09/2020", "--split-at")


def test_baselines_on_hand_checked_cases():
    split = time_split(_tiny(), SPLIT)
    view = baselines.train_view(split)
    assert baselines.has_repeats(view) and baselines.has_markets(split)
    # last 7 days before the split (from day 3): b x3 (days 3, 7, 9), a x2 (5, 6), c x2 (4, 8);
    # ties by item id
    assert baselines.popular_list(view, split, 12) == ["b", "a", "c"]
    again = baselines.buy_again(view, split, 4)
    assert again.lists["u1"] == ["a", "b", "c"]  # a twice, then b; filled with popular c
    assert again.lists["u4"] == ["b", "a", "c"] and again.personal == {"u1", "u2"}
    market = baselines.popular_market(view, split, 4)
    assert market.lists["u1"] == ["b", "a", "c"]  # no FR purchases before: global list
    assert market.lists["u4"] == ["b", "a", "c"]  # DE: b, then the global list
    for model in (baselines.als, baselines.bm25):
        answers = model(view, split, 3)
        assert set(answers.lists) == set(split.users)
        assert all(len(v) == 3 for v in answers.lists.values())
        assert answers.personal <= {"u1", "u2"}


def test_served_bundle_sees_no_test_purchase(shop):
    split = time_split(shop, dt.datetime(2026, 6, 1), 14)
    answers, manifest = served_answers(split, SMALL, 12)
    assert dt.datetime.fromisoformat(manifest.data_end) < split.split_at
    assert manifest.counts["purchases"] == split.train.purchases.join(
        shop.items.select("item_id"), on="item_id", how="semi").height
    with_history = [u for u in split.users if split.with_history(u)]
    assert manifest.counts["profiles"] == len(with_history)
    assert answers.personal <= set(with_history) and len(answers.personal) > 0
    assert all(len(answers.lists[u]) == 12 for u in split.users)


@pytest.fixture(scope="module")
def shop_evaluation(shop):
    split = time_split(shop, dt.datetime(2026, 6, 1), 14)
    return split, evaluate(split, SMALL, k=10, progress=False)


def test_harness_rows_and_groups(shop_evaluation):
    split, ev = shop_evaluation
    names = [r.name for r in ev.rows]
    assert names == [SERVED, "popular_7d", "popular_market", "als", "bm25", "buy_again"]
    n_hist = sum(1 for u in split.users if split.with_history(u))
    for row in ev.rows:
        groups = row.groups
        assert set(groups) == set(GROUPS)
        assert groups["all"].customers == len(split.users) == sum(ev.customers_by_history)
        assert groups["with_history"].customers == n_hist
        assert groups["without_history"].customers == len(split.users) - n_hist
        for f in groups.values():
            assert 0 <= f.map12 <= 1 and 0 <= f.recall <= 1 and 0 <= f.ndcg <= 1
            assert 0 < f.coverage <= 1
        assert len(row.map12_by_history) == len(ev.history_buckets)
        for value, n in zip(row.map12_by_history, ev.customers_by_history):
            assert (value is None) == (n == 0)
    assert ev.row("popular_7d").groups["all"].personal == 1.0
    assert ev.row(SERVED).groups["without_history"].personal == 0.0
    assert ev.row(SERVED).groups["with_history"].personal > 0.9


def test_table_json_and_report(shop_evaluation, tmp_path):
    _, ev = shop_evaluation
    table = format_table(ev)
    assert "served (for you, this project)" in table and "recall@10" in table
    assert "best baseline" in table
    data = json.loads(write_json(ev, tmp_path / "ev.json").read_bytes())
    assert data["rows"][0]["groups"]["all"]["map12"] == ev.rows[0].groups["all"].map12
    report = write_report(ev, tmp_path / "report", "python -m training evaluate ...")
    text = report.read_text()
    for png in ("map_by_model.png", "map_by_history.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in text
    assert "How the settings were chosen" in text and "validation" in text


def test_evaluate_command_on_a_canonical_export(shop, tmp_path, capsys):
    data_dir = write_canonical(shop, tmp_path / "export")
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"factors": 8, "iterations": 3, "candidates": 30}))
    code = main(["evaluate", "--dataset", "canonical", "--data", str(data_dir),
                 "--split-at", "2026-06-01", "--test-days", "14", "--k", "5", "--quiet",
                 "--config", str(config), "--models", "served,popular_7d,buy_again",
                 "--json", str(tmp_path / "out.json"), "--report", str(tmp_path / "rep")])
    assert code == 0
    out = capsys.readouterr().out
    assert "recall@5" in out and "buy again" in out and "implicit" not in out
    figures = json.loads((tmp_path / "out.json").read_bytes())
    assert [r["name"] for r in figures["rows"]] == [SERVED, "popular_7d", "buy_again"]
    assert (tmp_path / "rep" / "report.md").exists()


@pytest.mark.parametrize("argv,message", [
    (["--split-at", "2026-13-01"], "--split-at '2026-13-01' is not a date"),
    (["--split-at", "2020-01-01"], "not after the first purchase"),
    (["--split-at", "2027-01-01"], "after the last purchase"),
    (["--split-at", "2026-06-01", "--test-days", "0"], "--test-days must be at least 1"),
    (["--split-at", "2026-06-01", "--models", "served,magic"], "unknown model(s) magic"),
])
def test_evaluate_command_errors(shop, tmp_path, capsys, argv, message):
    data_dir = write_canonical(shop, tmp_path / "export")
    code = main(["evaluate", "--dataset", "canonical", "--data", str(data_dir), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_evaluate_command_rejects_unknown_dataset(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["evaluate", "--dataset", "movielens", "--data", str(tmp_path),
              "--split-at", "2020-01-01"])
    assert "invalid choice: 'movielens'" in capsys.readouterr().err
