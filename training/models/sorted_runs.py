"""Runs of equal values in a sorted key array: the grouping step of the sort-based
aggregations (size recency and evidence, repurchase pairs), which at millions of rows cost a
fraction of the memory of a hash group-by."""

from __future__ import annotations

import numpy as np


def runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each run of equal values in ``sorted_keys`` (non-empty)."""
    start = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return start, np.diff(np.r_[start, sorted_keys.size])
