"""Evaluation of the preselected size on a time split, with its baselines in the same run.

:func:`evaluate_sizes` trains a real bundle on the rows before the split (the trainer's own
pipeline, into a temporary directory), opens it with :class:`artifacts.bundle.Bundle` and, for
every later row of a customer with history in the item's size system, asks
:func:`artifacts.sizing.choose_size` - the function the service calls - with the customer's
batch profile from the bundle, at confidence 0 so the whole precision-coverage curve can be
drawn. Nothing of the test period reaches the model: no live signals, and for RentTheRunway,
whose adapter derives each item's sizes on offer from all rentals (test ones included), the
sizes on offer are withheld (every size of the system is a candidate).

Scored on rows with fit feedback "fit" (the kept size is the true one): coverage and exact
accuracy at the served threshold, and precision at every coverage level (rows ranked by
confidence). On "small" / "large" rows: how often the answer moved the right way (larger than
the size that was too small, smaller than the one too large). Baselines, answered for the same
rows: "last size" (of the customer's last purchase in the system) and "most frequent size"
(ties: the most recent), each with the share of the customer's purchases in that size as its
confidence.

A customer "has history" when they bought at least one sized item of the system before the
split.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time

import msgspec
import numpy as np
import polars as pl

from artifacts.bundle import Bundle
from artifacts.sizing import FEATURES, SizeView, choose_size
from training.config import TrainConfig
from training.data.schema import CanonicalData, DataError
from training.evaluation.split import mask_future
from training.models.sizes import SizeConfig
from training.pipeline import export, fit

log = logging.getLogger(__name__)
SERVED = "served"
LABELS = {SERVED: "served (size model, this project)", "last_size": "last size bought",
          "most_frequent": "most frequent size"}
#: Coverage levels reported in the table (share of the "fit" rows with history).
LEVELS = (0.1, 0.2, 0.3, 0.5, 0.8, 1.0)
#: Adapters whose items' sizes on offer are derived from all purchases (withheld here).
DERIVED_SIZES = frozenset({"renttherunway"})
#: Small, quick settings for the parts of the bundle the size evaluation does not measure.
BUNDLE_CONFIG = TrainConfig(factors=8, iterations=2, candidates=10, neighbours=10)


class CurvePoint(msgspec.Struct, array_like=True):
    coverage: float
    precision: float
    confidence: float


class SizeRow(msgspec.Struct, kw_only=True):
    name: str
    label: str
    rows: int
    """"fit" rows of customers with history."""
    answered: int
    """Rows answered at the served threshold (baselines answer every row)."""
    coverage: float
    accuracy: float
    """Exact accuracy of the answered rows at the served threshold."""
    accuracy_all: float
    """Exact hits at confidence 0 over all rows (an abstention counts as a miss)."""
    precision_at: dict[str, float | None]
    """Precision at each coverage level of :data:`LEVELS` (None: the model never reaches it)."""
    curve: list[CurvePoint]
    moved_right: float | None
    """On "small"/"large" rows answered (confidence 0): share moved the right way."""
    moved_rows: int
    seconds: float


class SizeEvaluation(msgspec.Struct, kw_only=True):
    dataset: str
    split_at: str
    test_end: str
    train_purchases: int
    train_customers: int
    test_rows: int
    """Sized test rows of a customer with history in the item's size system."""
    fit_rows: int
    small_rows: int
    large_rows: int
    served_threshold: float
    rows: list[SizeRow]
    answers: dict[str, int]
    """How the served model answered the "fit" rows, by reason code."""
    weights: dict[str, float]
    bundle_version: str
    notes: list[str] = []
    created_at: str = ""

    def row(self, name: str) -> SizeRow:
        return next(r for r in self.rows if r.name == name)


def prepare_train(data: CanonicalData, split_at: dt.datetime) -> CanonicalData:
    """Training side of the split: rows before ``split_at``, purchase-derived item fields
    recomputed from them, derived sizes on offer withheld (see the module docstring)."""
    train = mask_future(data.before(split_at), split_at)
    if train.name in DERIVED_SIZES:
        items = train.items.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("sizes"))
        train = CanonicalData(train.name, train.purchases, items, train.customers, train.events)
    return train


def _test_rows(data: CanonicalData, split_at: dt.datetime, test_end: dt.datetime) -> pl.DataFrame:
    items = data.items.select("item_id", "sizes", system="size_system").drop_nulls("system")
    if data.name not in DERIVED_SIZES:  # one size on offer: nothing to preselect
        items = items.filter(pl.col("sizes").is_null() | (pl.col("sizes").list.len() >= 2))
    items = items.drop("sizes")
    rows = (data.purchases.filter((pl.col("ts") >= split_at) & (pl.col("ts") < test_end))
            .drop_nulls("size").join(items, on="item_id", how="inner"))
    history = (data.purchases.filter(pl.col("ts") < split_at).drop_nulls("size")
               .join(items, on="item_id", how="inner").sort("ts")
               .group_by("user_id", "system", maintain_order=True).agg(sizes=pl.col("size")))
    return rows.join(history, on=["user_id", "system"], how="inner").sort("ts", "user_id")


def _baselines(sizes: list[str]) -> dict[str, tuple[str, float]]:
    """(size, confidence) of "last size" and "most frequent size" from a customer's sizes,
    oldest first. Confidence: the (Laplace-smoothed) share of their purchases in that size."""
    counts: dict[str, int] = {}
    for s in sizes:
        counts[s] = counts.get(s, 0) + 1
    n = len(sizes)
    last = sizes[-1]
    best = max(counts.values())
    mode = next(s for s in reversed(sizes) if counts[s] == best)
    return {"last_size": (last, (counts[last] + 1) / (n + 2)),
            "most_frequent": (mode, (best + 1) / (n + 2))}


def _curve(hits: np.ndarray, conf: np.ndarray, total: int) -> tuple[list[CurvePoint], dict]:
    """Precision-coverage curve of answered rows ranked by confidence (ties: input order)."""
    order = np.argsort(-conf, kind="stable")
    cum = np.cumsum(hits[order])
    k = np.arange(1, len(order) + 1)
    steps = sorted({max(1, int(round(f * len(order)))) for f in np.linspace(0.02, 1, 50)})
    points = [CurvePoint(round(float(j / total), 4), round(float(cum[j - 1] / j), 4),
                         round(float(conf[order[j - 1]]), 4))
              for j in steps] if len(order) else []
    at: dict[str, float | None] = {}
    for level in LEVELS:
        need = int(round(level * total))
        at[f"{level:.0%}"] = (round(float(cum[need - 1] / k[need - 1]), 4)
                              if 0 < need <= len(order) else None)
    return points, at


def _score(name: str, answers: list[tuple[str | None, float]], rows: pl.DataFrame,
           order_of: dict[str, dict[str, int]], threshold: float, seconds: float) -> SizeRow:
    fit = (rows["fit"] == "fit").fill_null(False).to_numpy()
    truth = rows["size"].to_list()
    systems = rows["system"].to_list()
    sizes = [a[0] for a in answers]
    conf = np.asarray([a[1] for a in answers])
    answered = np.asarray([s is not None for s in sizes])
    hit = np.asarray([s == t for s, t in zip(sizes, truth)])
    f_ans, f_hit, f_conf = answered[fit], hit[fit], conf[fit]
    total = int(fit.sum())
    served = f_ans & (f_conf >= threshold)
    curve, at = _curve(f_hit[f_ans], f_conf[f_ans], total)
    moved, moved_rows = 0, 0
    for size, true, system, fb in zip(sizes, truth, systems, rows["fit"].to_list()):
        if size is None or fb not in ("small", "large"):
            continue
        index = order_of[system]
        if size not in index or true not in index:
            continue
        moved_rows += 1
        delta = index[size] - index[true]
        moved += delta > 0 if fb == "small" else delta < 0
    return SizeRow(
        name=name, label=LABELS.get(name, name), rows=total, answered=int(served.sum()),
        coverage=round(float(served.sum() / total), 4) if total else 0.0,
        accuracy=round(float(f_hit[served].mean()), 4) if served.any() else 0.0,
        accuracy_all=round(float((f_hit & f_ans).sum() / total), 4) if total else 0.0,
        precision_at=at, curve=curve,
        moved_right=round(moved / moved_rows, 4) if moved_rows else None,
        moved_rows=moved_rows, seconds=round(seconds, 2))


def evaluate_sizes(data: CanonicalData, split_at: dt.datetime, *,
                   test_days: int | None = None, config: SizeConfig | None = None,
                   progress: bool = False) -> SizeEvaluation:
    """Train on ``data`` before ``split_at`` and score the served size and the baselines on
    the sized rows from ``split_at`` (for ``test_days``, default: to the end)."""
    start, end = data.purchases["ts"].min(), data.purchases["ts"].max()
    if not start < split_at <= end:
        raise DataError(f"split date {split_at.date()} must fall inside the data: {data.name} "
                        f"has purchases from {start.date()} to {end.date()}")
    test_end = (split_at + dt.timedelta(days=test_days) if test_days
                else end + dt.timedelta(microseconds=1))
    rows = _test_rows(data, split_at, test_end)
    if rows.filter(pl.col("fit") == "fit").height == 0:
        raise DataError(f"{data.name}: no sized purchase with fit feedback 'fit' from "
                        f"{split_at.date()} by a customer with sized purchases before it; "
                        "nothing to score")
    train = prepare_train(data, split_at)
    started = time.perf_counter()
    users = rows["user_id"].unique().to_list()
    fitted = fit(train, BUNDLE_CONFIG, progress=progress)
    with tempfile.TemporaryDirectory(prefix="reco-sizes-") as tmp:
        path, _ = export(fitted, BUNDLE_CONFIG, tmp, profile_users=users, progress=progress,
                         size_config=config)
        bundle = Bundle.open(path)
        view = SizeView.from_bundle(bundle)
        if not view.available:
            raise DataError(f"{data.name}: the trainer found no sized purchases in items with "
                            "a size system before the split; no size model to evaluate")
        profiles = {r.user_id: r.profile.sizes for r in bundle.profile_records()}
        version = bundle.version
    train_seconds = time.perf_counter() - started
    order_of = {s.name: s.index for s in view.systems}

    started = time.perf_counter()
    served: list[tuple[str | None, float]] = []
    reasons: dict[str, int] = {}
    for user, item, fb in rows.select("user_id", "item_id", "fit").iter_rows():
        index = view.items.index(item)
        answer = choose_size(view, index, profiles.get(user, ()), min_confidence=0.0)
        served.append((answer.size, answer.confidence))
        if fb == "fit":
            basis = answer.basis if answer.size is None or \
                answer.confidence >= view.min_confidence else "uncertain"
            reasons[basis] = reasons.get(basis, 0) + 1
    served_seconds = time.perf_counter() - started + train_seconds
    started = time.perf_counter()
    base = [_baselines(sizes) for sizes in rows["sizes"].to_list()]
    base_seconds = time.perf_counter() - started
    table = [_score(SERVED, served, rows, order_of, view.min_confidence, served_seconds)]
    for name in ("last_size", "most_frequent"):
        table.append(_score(name, [b[name] for b in base], rows, order_of, 0.0, base_seconds))
    fb = rows["fit"]
    notes = [
        "served answers are asked at confidence 0 for the curve; 'coverage' and 'accuracy' "
        f"are at the served threshold ({view.min_confidence}); the baselines always answer",
        "a customer has history when they bought a sized item of the same size system before "
        "the split; only the trainer's batch profile is used (no live signals)",
    ]
    if data.name not in DERIVED_SIZES:
        notes.append("items offering a single size are left out: there is nothing to preselect")
    if data.name in DERIVED_SIZES:
        notes.append("sizes on offer withheld: the adapter derives them from every rental, "
                     "test ones included; every size of the system is a candidate")
    return SizeEvaluation(
        dataset=data.name, split_at=split_at.isoformat(), test_end=test_end.isoformat(),
        train_purchases=train.purchases.height,
        train_customers=train.purchases["user_id"].n_unique(), test_rows=rows.height,
        fit_rows=int((fb == "fit").sum()), small_rows=int((fb == "small").sum()),
        large_rows=int((fb == "large").sum()), served_threshold=view.min_confidence,
        rows=table, answers=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        weights={k: float(v) for k, v in zip(FEATURES, view.weights)},
        bundle_version=version, notes=notes,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
