"""Evaluation figures for a training run, and the gate that compares two bundles by them.

A training run cannot be measured on what it trains on, so :func:`holdout_evaluation` holds out
the last days of the data, fits the same config on everything before them and runs the full
harness there (served recommendations and baselines). The bundle trained afterwards on all the
data carries these figures in its manifest (``metrics``): they say how well this data and this
config predict the next days, the best available estimate for the bundle itself.

:func:`gate_reason` compares the figures of a new bundle with those of the serving one. On the
same held-out window it compares served MAP@12 directly; on different windows (the usual case:
new data arrived) absolute MAP@12 moves with the period, so it compares the *lift* of the served
recommendations over last-7-days popularity measured in the same run. Where that lift cannot be
computed (popularity scored 0 or carries no figure in either window) it falls back to absolute
MAP@12, so a bundle that scores nothing is never waved through. A drop of more than the
tolerance for all customers, or for those with history, refuses the new bundle.
"""

from __future__ import annotations

import datetime as dt
import logging

import msgspec

from training.config import TrainConfig
from training.data.schema import CanonicalData
from training.evaluation.harness import SERVED, Evaluation, evaluate
from training.evaluation.split import time_split

log = logging.getLogger(__name__)
GATED_GROUPS = ("all", "with_history")
REFERENCE = "popular_7d"


def holdout_days(data: CanonicalData, config: TrainConfig, requested: int | None = None) -> int:
    """``requested`` days (default ``config.holdout_days``), capped at a fifth of the data's
    span in days (logged when it cuts), at least 1: the rest must stay to train on."""
    span = (data.purchases["ts"].max() - data.purchases["ts"].min()).days
    cap = max(1, span // 5)
    days = requested or config.holdout_days
    if days > cap:
        log.warning("holding out %d day(s), not %d: at most a fifth of the data's %d-day span",
                    cap, days, span)
    return max(1, min(days, cap))


def holdout_evaluation(data: CanonicalData, config: TrainConfig, *, days: int | None = None,
                       k: int = 12, progress: bool = False) -> Evaluation:
    """The harness on the last ``days`` calendar days of ``data`` (default
    ``config.holdout_days``; either capped by :func:`holdout_days`), trained on everything
    before them."""
    days = holdout_days(data, config, days)
    last_day = data.purchases["ts"].max().date()
    split_at = dt.datetime.combine(last_day - dt.timedelta(days=days - 1), dt.time())
    return evaluate(time_split(data, split_at, days), config, k=k, progress=progress)


def manifest_metrics(ev: Evaluation) -> dict:
    """The figures of ``ev`` as the manifest carries them."""
    start = dt.datetime.fromisoformat(ev.split_at)
    days = round((dt.datetime.fromisoformat(ev.test_end) - start).total_seconds() / 86400)
    return {
        "holdout": {"split_at": ev.split_at, "test_end": ev.test_end, "days": days, "k": ev.k},
        "customers": {g: f.customers for g, f in ev.rows[0].groups.items()},
        "models": {row.name: {g: msgspec.to_builtins(f) for g, f in row.groups.items()}
                   for row in ev.rows},
    }


def _map12(metrics: dict, model: str, group: str) -> float | None:
    try:
        return float(metrics["models"][model][group]["map12"])
    except (KeyError, TypeError):
        return None


def gate_reason(new: dict, serving: dict, tolerance: float) -> str | None:
    """Why the bundle with figures ``new`` must not replace the one with ``serving``, or None.

    For each gated group (all customers, those with history) the served MAP@12 is compared:

    * same held-out window: MAP@12 directly;
    * different windows: MAP@12 divided by the reference's (``popular_7d``) MAP@12 in the same
      window, i.e. the lift over popularity;
    * different windows where either window's reference MAP@12 is 0 or missing (no lift can
      be computed): MAP@12 directly again, and the reason says so. A new window in which even
      popularity finds nothing cannot vouch for a bundle, so it must at least match the
      serving bundle's absolute figure.

    The new bundle is refused when its figure is below the serving one's by more than
    ``tolerance`` (a fraction) in any group. A serving bundle without figures (or without one
    for a group) cannot be compared and never blocks; a new bundle without figures (or without
    one for a group the serving bundle has) is refused (the gate cannot vouch for it). A group
    without customers in the new window (say, none with history) is not compared: its figures
    are 0 by definition, not by the bundle's fault.
    """
    if _map12(serving, SERVED, "all") is None:
        return None
    if _map12(new, SERVED, "all") is None:
        return "the new bundle carries no evaluation figures (trained with --no-evaluate?)"
    same = new.get("holdout", {}).get("split_at") == serving.get("holdout", {}).get("split_at") \
        and new.get("holdout", {}).get("test_end") == serving.get("holdout", {}).get("test_end")
    reasons = []
    for group in GATED_GROUPS:
        ours, theirs = _map12(new, SERVED, group), _map12(serving, SERVED, group)
        who = f"{group.replace('_', ' ')} customers"
        if theirs is None or new.get("customers", {}).get(group) == 0:
            continue  # nothing to compare with, or no such customer in the new window
        if ours is None:
            reasons.append(f"the new bundle carries no MAP@12 for {who}")
            continue
        what, note = "MAP@12", ""
        if not same:
            base_new, base_old = _map12(new, REFERENCE, group), _map12(serving, REFERENCE, group)
            if base_new and base_old:
                ours, theirs = ours / base_new, theirs / base_old
                what = f"MAP@12 lift over {REFERENCE}"
            else:
                window = "new" if not base_new else "serving bundle's"
                note = (f" (absolute MAP@12: {REFERENCE} scores 0 or has no figure in the "
                        f"{window} window, so no lift over it can be computed)")
        if ours < theirs * (1 - tolerance):
            reasons.append(f"{what} for {who} is {ours:.5f}, below the serving bundle's "
                           f"{theirs:.5f} by more than {tolerance:.0%}{note}")
    if not reasons:
        return None
    window = "same held-out window" if same else "different held-out windows"
    return "; ".join(reasons) + f" ({window})"
