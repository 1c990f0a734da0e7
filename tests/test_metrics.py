"""Metric definitions on hand-computed cases."""

import math

import pytest

from training.evaluation.metrics import (average_precision_at_k, coverage, figures, ndcg_at_k,
                                         recall_at_k)


def test_average_precision_hand_computed():
    # hits at ranks 1 and 3: (1/1 + 2/3) / min(2, 12)
    assert average_precision_at_k(["a", "x", "b"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_divides_by_min_of_actual_and_k():
    actual = {f"i{i}" for i in range(20)}
    assert average_precision_at_k(["i0"], actual, k=12) == pytest.approx(1 / 12)


def test_average_precision_ignores_duplicates_and_ranks_past_k():
    assert average_precision_at_k(["a", "a", "b"], {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision_at_k(["x", "a"], {"a"}, k=1) == 0.0


def test_recall_and_ndcg():
    assert recall_at_k(["a", "x", "b"], {"a", "b", "c", "d"}, 2) == 0.25
    expected = (1 / math.log2(2) + 1 / math.log2(4)) / (1 / math.log2(2) + 1 / math.log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 3) == pytest.approx(expected)


def test_empty_actual_is_an_error():
    with pytest.raises(ValueError):
        average_precision_at_k(["a"], set())


def test_average_precision_full_list_hand_computed():
    # relevant a, b, c; hits at ranks 2, 4 and 5: (1/2 + 2/4 + 3/5) / 3
    predicted = ["x", "a", "y", "b", "c", "z"]
    assert average_precision_at_k(predicted, {"a", "b", "c"}) == pytest.approx((0.5 + 0.5 + 0.6) / 3)
    # a relevant item past rank 12 does not count, but still divides (min(13, 12) = 12)
    actual = {f"r{i}" for i in range(13)}
    predicted = [f"n{i}" for i in range(12)] + ["r0"]
    assert average_precision_at_k(predicted, actual) == 0.0


def test_recall_and_ndcg_edge_cases():
    assert recall_at_k(["a", "a", "b"], {"a", "b"}, 2) == 0.5  # duplicates count once
    assert recall_at_k([], {"a"}, 12) == 0.0
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 2) == pytest.approx(1.0)
    # one relevant item at rank 2 of 3: (1/log2(3)) / (1/log2(2))
    assert ndcg_at_k(["x", "a", "y"], {"a"}, 3) == pytest.approx(1 / math.log2(3))
    # ideal DCG is cut at k: 3 relevant, k = 1, hit at rank 1 -> 1.0
    assert ndcg_at_k(["a"], {"a", "b", "c"}, 1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        recall_at_k(["a"], set(), 12)
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], set(), 12)


def test_coverage_counts_distinct_items_in_top_k():
    lists = [["a", "b", "c"], ["b", "d"], []]
    assert coverage(lists, 2, 10) == pytest.approx(3 / 10)  # a, b, d
    assert coverage(lists, 3, 4) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        coverage(lists, 2, 0)


def test_figures_average_over_the_group():
    lists = {"u1": ["a", "x"], "u2": ["x", "b"], "u3": ["c"]}
    actual = {"u1": {"a"}, "u2": {"b"}, "u3": {"z"}}
    f = figures(lists, actual, ["u1", "u2"], k=2, catalogue_size=4, personal={"u1"})
    assert f.customers == 2
    assert f.map12 == pytest.approx((1.0 + 0.5) / 2)
    assert f.recall == pytest.approx(1.0)
    assert f.ndcg == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    assert f.coverage == pytest.approx(3 / 4)  # a, x, b
    assert f.personal == 0.5
    assert figures(lists, actual, [], k=2, catalogue_size=4).customers == 0
