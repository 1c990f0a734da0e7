"""Variants of one product: catalogue items that share a name within a category.

Fashion catalogues list a product once per colour or cut (H&M: one article per colour of a
``prod_name``); a customer who bought one is likely to look at the others. The similarity is 1
between two different items of the same (normalised name, category) group and 0 otherwise.
Names shared by more than ``max_group`` items are generic ("T-shirt") rather than one product
and are ignored, as are empty names.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp


def variant_similarity(names: list[str | None], item_category: np.ndarray,
                       max_group: int) -> sp.csr_matrix:
    """Sparse (items x items) 0/1 matrix, no diagonal."""
    n = len(names)
    df = (pl.DataFrame({"name": pl.Series(names, dtype=pl.String), "cat": item_category,
                        "idx": np.arange(n, dtype=np.int64)})
          .with_columns(pl.col("name").str.strip_chars().str.to_lowercase())
          .filter(pl.col("name").is_not_null() & (pl.col("name") != "")))
    groups = (df.group_by("name", "cat").agg(pl.col("idx"))
              .filter(pl.col("idx").list.len().is_between(2, max_group)))
    if groups.height == 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    pairs = (groups.select(a=pl.col("idx"), b=pl.col("idx")).explode("a").explode("b")
             .filter(pl.col("a") != pl.col("b")))
    return sp.csr_matrix((np.ones(pairs.height, np.float32),
                          (pairs["a"].to_numpy(), pairs["b"].to_numpy())), shape=(n, n))
