"""``python -m training evaluate-sizes``: the command on the demo shop exported in canonical
form, its baselines on a hand-checked case, and the goal on RentTheRunway (real data)."""

import datetime as dt
import json

import pytest

from tests.conftest import shared_dataset
from training.cli import main
from training.data import load_dataset
from training.data.canonical import write_canonical
from training.evaluation.sizes import LEVELS, SERVED, _baselines, evaluate_sizes

SPLIT = dt.datetime(2017, 6, 1)


@pytest.fixture(scope="module")
def shop_dir(shop, tmp_path_factory):
    return write_canonical(shop, tmp_path_factory.mktemp("canonical-shop"))


def test_baselines_last_and_most_frequent():
    base = _baselines(["M", "L", "M", "S", "L"])
    assert base["last_size"] == ("L", 3 / 7)
    assert base["most_frequent"] == ("L", 3 / 7)  # M and L tie: the most recent wins
    assert _baselines(["S"])["most_frequent"] == ("S", 2 / 3)


def test_evaluate_sizes_command_on_the_demo_shop(shop_dir, tmp_path, capsys):
    out_json, report = tmp_path / "sizes.json", tmp_path / "report"
    code = main(["evaluate-sizes", "--dataset", "canonical", "--data", str(shop_dir),
                 "--split-at", "2026-05-15", "--json", str(out_json), "--report", str(report),
                 "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    for label in ("served (size model", "last size bought", "most frequent size", "P@30%"):
        assert label in printed
    ev = json.loads(out_json.read_text())
    rows = {r["name"]: r for r in ev["rows"]}
    assert set(rows) == {SERVED, "last_size", "most_frequent"}
    assert ev["fit_rows"] > 100 and ev["small_rows"] > 0 and ev["large_rows"] > 0
    served, best = rows[SERVED], max(rows["last_size"]["accuracy_all"],
                                     rows["most_frequent"]["accuracy_all"])
    assert served["accuracy_all"] > best
    for level in LEVELS[:-1]:
        key = f"{level:.0%}"
        assert served["precision_at"][key] > max(rows["last_size"]["precision_at"][key],
                                                 rows["most_frequent"]["precision_at"][key])
    assert served["moved_right"] > rows["most_frequent"]["moved_right"]
    assert (report / "sizes.md").exists() and (report / "size_precision_coverage.png").exists()
    assert "size_precision_coverage.png" in (report / "sizes.md").read_text()


@pytest.mark.parametrize("args,message", [
    (["--split-at", "2030-01-01"], "must fall inside the data"),
    (["--split-at", "June"], "is not a date"),
    (["--split-at", "2026-05-15", "--test-days", "0"], "--test-days must be at least 1"),
])
def test_evaluate_sizes_errors_name_the_problem(shop_dir, args, message, capsys):
    code = main(["evaluate-sizes", "--dataset", "canonical", "--data", str(shop_dir), *args])
    assert code == 2 and message in capsys.readouterr().err


def test_evaluate_sizes_accepts_only_sized_datasets(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate-sizes", "--dataset", "hm", "--data", ".", "--split-at", "2020-09-21"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.realdata
def test_renttherunway_goal():
    """The issue's goal on RentTheRunway, split 2017-06-01: beat "last size" and "most
    frequent size" at every coverage level, at least 0.50 exact accuracy at full coverage and
    0.65 precision at 30% coverage."""
    data = load_dataset("renttherunway", shared_dataset("renttherunway"))
    ev = evaluate_sizes(data, SPLIT)
    served = ev.row(SERVED)
    baselines = [ev.row("last_size"), ev.row("most_frequent")]
    assert 0.38 < baselines[0].accuracy_all < 0.43 and 0.42 < baselines[1].accuracy_all < 0.46
    for level in LEVELS:
        key = f"{level:.0%}"
        assert served.precision_at[key] is not None, f"served never reaches {key}"
        assert served.precision_at[key] > max(b.precision_at[key] for b in baselines), key
    assert served.precision_at["100%"] >= 0.50
    assert served.precision_at["30%"] >= 0.65
