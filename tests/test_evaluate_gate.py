"""Evaluation figures in the manifest and the publish gate (``train --gate``)."""

import datetime as dt
import json
import os

import pytest

from artifacts.bundle import CURRENT_LINK, Bundle, list_versions
from training.cli import main
from training.config import TrainConfig
from training.evaluation.holdout import gate_reason, holdout_days


def _figures(split_at, served_all, served_hist, pop_all=0.01, pop_hist=0.01):
    def groups(a, h):
        return {"all": {"map12": a}, "with_history": {"map12": h}}
    return {"holdout": {"split_at": split_at, "test_end": "x"},
            "models": {"served": groups(served_all, served_hist),
                       "popular_7d": groups(pop_all, pop_hist)}}


def test_gate_on_the_same_window_compares_map():
    serving = _figures("2026-06-24", 0.10, 0.20)
    assert gate_reason(_figures("2026-06-24", 0.099, 0.195), serving, 0.05) is None
    reason = gate_reason(_figures("2026-06-24", 0.09, 0.20), serving, 0.05)
    assert "MAP@12 for all customers is 0.09000" in reason and "0.10000" in reason
    assert "same held-out window" in reason and "with history" not in reason


def test_gate_on_another_window_compares_lift_over_popularity():
    serving = _figures("2026-06-24", 0.10, 0.20, pop_all=0.02, pop_hist=0.02)  # lifts 5, 10
    # lower absolute MAP in a harder week, but the same lift: passes
    assert gate_reason(_figures("2026-07-01", 0.05, 0.10, 0.01, 0.01), serving, 0.05) is None
    reason = gate_reason(_figures("2026-07-01", 0.10, 0.10, 0.02, 0.02), serving, 0.05)
    assert "lift over popular_7d for with history customers is 5.00000" in reason
    assert "different held-out windows" in reason


@pytest.mark.parametrize("new_pop, serving_pop, where", [
    (0.0, 0.02, "new"), (None, 0.02, "new"), (0.02, 0.0, "serving bundle's"),
])
def test_gate_on_another_window_without_a_lift_compares_absolute_map(new_pop, serving_pop,
                                                                     where):
    """A new window where popularity scores 0 (or has no figure) gives no lift to compare:
    a bundle that scores 0 must not pass as "no worse" (it did: the groups were skipped)."""
    serving = _figures("2026-06-24", 0.126, 0.2, pop_all=0.02, pop_hist=0.02)
    new = _figures("2099-07-01", 0.0, 0.0, pop_all=0.02, pop_hist=0.02)
    for group in ("all", "with_history"):
        new["models"]["popular_7d"][group]["map12"] = new_pop
        serving["models"]["popular_7d"][group]["map12"] = serving_pop
    reason = gate_reason(new, serving, 0.05)
    assert reason is not None
    assert "MAP@12 for all customers is 0.00000, below the serving bundle's 0.12600" in reason
    assert (f"(absolute MAP@12: popular_7d scores 0 or has no figure in the {where} window, "
            f"so no lift over it can be computed)") in reason
    assert "different held-out windows" in reason
    same_map = _figures("2099-07-01", 0.126, 0.2)
    same_map["models"]["popular_7d"] = new["models"]["popular_7d"]
    assert gate_reason(same_map, serving, 0.05) is None


def test_gate_refuses_a_new_bundle_without_a_group_the_serving_one_has():
    new = _figures("2026-07-01", 0.10, 0.20)
    del new["models"]["served"]["with_history"]
    reason = gate_reason(new, _figures("2026-06-24", 0.10, 0.20), 0.05)
    assert reason.startswith("the new bundle carries no MAP@12 for with history customers")


def test_gate_skips_a_group_the_new_window_has_no_customer_of():
    """No customer with history in the new window: its zeros say nothing about the bundle."""
    new = _figures("2026-07-01", 0.10, 0.0, pop_all=0.01, pop_hist=0.0)
    new["customers"] = {"all": 120, "with_history": 0}
    assert gate_reason(new, _figures("2026-06-24", 0.10, 0.20), 0.05) is None
    new["customers"]["with_history"] = 3  # some: compared (absolute, no lift): refused
    assert "with history customers is 0.00000" in gate_reason(
        new, _figures("2026-06-24", 0.10, 0.20), 0.05)


def test_gate_without_figures():
    assert gate_reason(_figures("d", 0.1, 0.1), {}, 0.05) is None  # nothing to compare with
    assert "no evaluation figures" in gate_reason({}, _figures("d", 0.1, 0.1), 0.05)


def test_holdout_is_capped_by_the_span(shop):
    assert holdout_days(shop, TrainConfig(holdout_days=7)) == 7
    short = shop.before(shop.purchases["ts"].min() + (shop.purchases["ts"].max()
                                                      - shop.purchases["ts"].min()) / 40)
    assert holdout_days(short, TrainConfig(holdout_days=7)) == 1


def _train(out, tmp_path, *extra, config=None):
    settings = {"factors": 8, "iterations": 3, "candidates": 30, **(config or {})}
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json"
    path.write_text(json.dumps(settings))
    return main(["train", "--dataset", "synthetic", "--out", str(out), "--no-redis", "--quiet",
                 "--config", str(path), *extra])


def test_train_records_figures_and_the_gate_refuses_a_worse_bundle(tmp_path, capsys):
    out = tmp_path / "bundles"
    assert _train(out, tmp_path, "--report", str(tmp_path / "report")) == 0
    assert (tmp_path / "report" / "report.md").exists()
    first = Bundle.open(out)
    metrics = first.manifest.metrics
    assert metrics["holdout"]["days"] == 7
    served = metrics["models"]["served"]
    assert served["with_history"]["map12"] > metrics["models"]["popular_7d"]["with_history"]["map12"]
    assert metrics["customers"]["all"] == served["all"]["customers"] > 0
    capsys.readouterr()

    # popularity only: clearly worse, refused; current stays
    worse = {"weight_repurchase": 0.0, "weight_itemknn": 0.0, "weight_variant": 0.0,
             "weight_als": 0.0}
    assert _train(out, tmp_path, "--gate", config=worse) == 4
    out_text = capsys.readouterr().out
    assert "NOT published" in out_text and "below the serving bundle's" in out_text
    assert os.readlink(out / CURRENT_LINK) == first.version
    assert len(list_versions(out)) == 2

    # the same settings again: passes the gate and becomes current
    assert _train(out, tmp_path, "--gate") == 0
    assert os.readlink(out / CURRENT_LINK) != first.version


def test_gate_needs_figures(tmp_path, capsys):
    assert _train(tmp_path / "b", tmp_path, "--gate", "--no-evaluate") == 2
    assert "--gate compares held-out figures" in capsys.readouterr().err


def test_holdout_days_above_a_fifth_of_the_span_are_capped_and_logged(tmp_path, capsys,
                                                                      caplog):
    out = tmp_path / "bundles"
    with caplog.at_level("WARNING", logger="training.evaluation.holdout"):
        assert _train(out, tmp_path, "--holdout-days", "200", "--no-publish") == 0
    bundle = Bundle.open(out / list_versions(out)[0])
    span = (dt.datetime.fromisoformat(bundle.manifest.data_end)
            - dt.datetime.fromisoformat(bundle.manifest.data_start)).days
    assert bundle.manifest.metrics["holdout"]["days"] == span // 5 < 200
    assert f"holding out {span // 5} day(s), not 200: at most a fifth of the data's " \
           f"{span}-day span" in caplog.text
    assert f"held out {span // 5} day(s)" in capsys.readouterr().out


@pytest.mark.parametrize("days,message", [("0", "--holdout-days must be at least 1")])
def test_bad_holdout_days(tmp_path, capsys, days, message):
    assert _train(tmp_path / "b", tmp_path, "--holdout-days", days) == 2
    assert message in capsys.readouterr().err
