"""Metric definitions on hand-computed cases."""

import math

import pytest

from training.evaluation.metrics import average_precision_at_k, ndcg_at_k, recall_at_k


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
