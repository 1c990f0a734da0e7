"""Typed trainer configuration: one Struct, read once, passed explicitly.

Unknown keys are rejected so a typo in a config file fails loudly instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Positive = Annotated[int, Meta(ge=1)]
NonNegative = Annotated[float, Meta(ge=0)]


class TrainConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every knob of a training run, with its default and what it does."""

    # -- interactions ------------------------------------------------------------------------
    half_life_days: Annotated[float, Meta(gt=0)] = 30.0
    """Purchases lose half their weight every this many days before the end of the data."""
    returned_weight: NonNegative = 0.0
    """Weight of a purchase that was returned (0 drops it: a return says "not for me")."""

    # -- item-to-item ("customers who bought this also bought") -------------------------------
    itemknn: Literal["bm25", "cosine", "tfidf"] = "tfidf"
    """Normalisation of co-purchase counts so popular items do not swamp every list.

    TF-IDF was chosen on the H&M validation split (train before 2020-09-20, validate on that
    day): MAP@12 0.0159 blended, against 0.0147 for cosine and 0.0075 for BM25 (k1=100, b=0.8)."""
    bm25_k1: NonNegative = 1.2
    bm25_b: Annotated[float, Meta(ge=0, le=1)] = 0.75
    neighbours: Annotated[int, Meta(ge=1, le=500)] = 50
    """Neighbours stored per item; items with too few co-purchases are filled from ALS."""

    # -- collaborative filtering (implicit ALS) ---------------------------------------------------
    factors: Annotated[int, Meta(ge=2, le=1024)] = 64
    regularization: NonNegative = 0.05
    alpha: Annotated[float, Meta(gt=0)] = 1.0
    iterations: Annotated[int, Meta(ge=1, le=200)] = 15
    seed: int = 42

    # -- popularity -----------------------------------------------------------------------------
    popularity_days: Annotated[int, Meta(ge=1)] = 7
    """Window before the end of the data that "popular now" counts purchases in."""
    popular_per_market: Annotated[int, Meta(ge=1, le=5000)] = 200

    # -- precomputed "for you" candidates in each batch profile ---------------------------------
    candidates: Annotated[int, Meta(ge=1, le=1000)] = 100
    active_days: Annotated[int, Meta(ge=1)] = 90
    """Only items bought in this window before the end of the data are candidates."""
    weight_itemknn: NonNegative = 1.0
    weight_als: NonNegative = 1.0
    weight_popularity: NonNegative = 0.1
    """Blend weights of the scaled sources; chosen on the same validation split."""
    history_items: Annotated[int, Meta(ge=1, le=1000)] = 100
    """Most recent distinct purchases kept per profile (excluded from recommendations)."""
    chunk_users: Positive = 1024
    """Users scored per vectorised block (memory ~ chunk_users x active items x 4 bytes x 3)."""

    # -- Redis ---------------------------------------------------------------------------------
    redis_batch: Annotated[int, Meta(ge=1, le=100_000)] = 2000
    """Profiles per pipelined round trip when writing to Redis."""

    @classmethod
    def load(cls, path: Path | None = None, **overrides) -> TrainConfig:
        """Defaults, then a JSON or TOML file, then explicit overrides (None values ignored)."""
        data: dict = {}
        if path is not None:
            raw = Path(path).read_bytes()
            data = msgspec.toml.decode(raw) if str(path).endswith(".toml") else msgspec.json.decode(raw)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(data, cls)

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)
