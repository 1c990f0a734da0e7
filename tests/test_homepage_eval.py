"""The homepage evaluation (training/evaluation/homepage.py) on a small demo shop split."""

import datetime as dt
import json

import pytest

from artifacts.homepage import SEGMENTS
from training.config import TrainConfig
from training.data.synthetic import generate_shop
from training.evaluation.homepage import (FIRST, best_orderings, evaluate_homepage, format_table,
                                          main)
from training.evaluation.split import time_split

SMALL = TrainConfig(factors=8, iterations=3, candidates=30, neighbours=10)


@pytest.fixture(scope="module")
def evaluation():
    shop = generate_shop(seed=3, n_customers=400, n_items=300, days=200)
    split = time_split(shop, dt.datetime(2026, 6, 16), 14)
    return split, evaluate_homepage(split, SMALL, visible=4)


def test_every_row_and_group_is_measured(evaluation):
    split, ev = evaluation
    names = [r.name for r in ev.rows]
    assert names == ["for_you", "popularity", "homepage", "default",
                     *(f"{s} first" for s in FIRST)]
    assert ev.group_sizes["all"] == len(split.users)
    assert ev.group_sizes["with_history"] + ev.group_sizes["no_history"] == len(split.users)
    assert set(SEGMENTS) <= set(ev.group_sizes)
    assert sum(ev.layouts.values()) == ev.group_sizes["with_history"]
    for row in ev.rows:
        for group, size in ev.group_sizes.items():
            f = row.groups[group]
            assert f["customers"] == size and 0 <= f["map12"] <= 1 and 0 <= f["recall"] <= 1


def test_pages_show_what_the_page_shows_first(evaluation):
    _, ev = evaluation
    rows = {r.name: r.groups for r in ev.rows}
    # customers without history get the same market homepage whatever the ordering
    no_history = {rows[name]["no_history"]["map12"] for name in rows
                  if name not in ("for_you", "popularity")}
    assert len(no_history) == 1
    # the personal lists beat popularity for customers with history
    assert rows["for_you"]["with_history"]["map12"] > rows["popularity"]["with_history"]["map12"]
    assert rows["default"]["with_history"]["map12"] > rows["popularity"]["with_history"]["map12"]
    assert "| with_history |" in format_table(ev)
    assert any(line.startswith("with_history") for line in best_orderings(ev))


def test_command_line(tmp_path, capsys):
    out = tmp_path / "homepage.json"
    assert main(["--dataset", "synthetic", "--split-at", "2026-06-16", "--test-days", "14",
                 "--visible", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "map12" in printed and "best" in printed
    assert json.loads(out.read_text())["visible"] == 3
