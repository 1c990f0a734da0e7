"""Choose the served model's settings on validation splits, never on the test split.

    python -m training.evaluation.tune --data-root ../shared/data [--passes 2] [--json OUT]

For each dataset of :data:`VALIDATION` the split is *earlier* than the test split the results
are reported on (H&M: train before 2020-09-20, validate on that day; Online Retail: train before
2011-09-01, validate on September 2011). The baselines are measured once per split; then a
coordinate search walks :data:`GRID` from the current defaults: one field at a time, every value
of it with the others fixed, keeping the best, for ``--passes`` passes. A setting's objective is
the mean, over datasets and over the groups "all" and "with history", of served MAP@12 divided
by the best baseline's MAP@12 in that group: above 1 means it leads everywhere on average. Every
setting tried is printed with its figures. Models are refitted only when a field in
:data:`training.pipeline.FIT_FIELDS` changes; blend-only changes reuse the fitted models.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from training.config import TrainConfig
from training.data import load_dataset
from training.evaluation import baselines
from training.evaluation.harness import SERVED, model_runners, score
from training.evaluation.served import served_answers
from training.evaluation.split import Split, time_split
from training.pipeline import FIT_FIELDS, Fitted, fit

log = logging.getLogger(__name__)
VALIDATION = {"hm": ("2020-09-20", 1), "online_retail": ("2011-09-01", 30)}
GROUPS = ("all", "with_history")
GRID: dict[str, list] = {
    "weight_repurchase": [1.0, 3.0, 10.0, 30.0],
    "repurchase_half_life_days": [1.0, 3.0, 10.0, 30.0, 100.0],
    "repurchase_prior": [0.0, 5.0, 20.0, 100.0],
    "repurchase_min_ratio": [0.0, 0.25, 0.5, 1.0],
    "weight_itemknn": [0.0, 0.3, 1.0, 3.0],
    "weight_variant": [0.0, 0.3, 1.0, 3.0],
    "weight_als": [0.0, 0.3, 1.0],
    "weight_popularity": [0.03, 0.1, 0.3, 1.0],
    "history_shrink": [0.0, 2.0, 5.0, 20.0],
    "popularity_days": [1, 3, 7, 14],
    "popularity_half_life_days": [1.0, 3.0, 30.0],
    "half_life_days": [3.0, 10.0, 30.0, 100.0],
    "itemknn": ["tfidf", "cosine", "bm25"],
    "factors": [32, 64, 128],
    "regularization": [0.01, 0.05, 0.2],
    "alpha": [1.0, 5.0, 20.0],
}


@dataclass
class Target:
    name: str
    split: Split
    best: dict[str, float]  # group -> best baseline MAP@12
    n: int = 12
    known: int = 0
    fits: dict | None = None


def prepare(data_root: Path, names: list[str]) -> list[Target]:
    targets = []
    for name in names:
        split_at, days = VALIDATION[name]
        split = time_split(load_dataset(name, data_root / name),
                           dt.datetime.fromisoformat(split_at), days)
        view = baselines.train_view(split)
        known = int((view.counts.getnnz(axis=0) > 0).sum())
        rows = [score(m, run(), split, 12, known, 0.0)
                for m, run in model_runners(split, view, TrainConfig(), 12).items()
                if m != SERVED]
        best = {g: max(r.groups[g].map12 for r in rows) for g in GROUPS}
        print(f"{name}: validation from {split_at} ({days} d); best baseline MAP@12 " +
              ", ".join(f"{g} {best[g]:.5f}" for g in GROUPS) + " (" +
              ", ".join(f"{r.name} {r.groups['with_history'].map12:.5f}" for r in rows) + ")",
              flush=True)
        targets.append(Target(name, split, best, known=known, fits={}))
    return targets


def measure(config: TrainConfig, targets: list[Target]) -> tuple[float, dict]:
    """The objective of ``config`` and its MAP@12 per dataset and group."""
    ratios, figures = [], {}
    for t in targets:
        key = tuple(getattr(config, f) for f in FIT_FIELDS)
        fitted: Fitted | None = t.fits.get(key)
        if fitted is None:
            t.fits.clear()  # keep one fit per dataset in memory
            fitted = t.fits[key] = fit(t.split.train, config, progress=False)
        answers, _ = served_answers(t.split, config, t.n, fitted=fitted)
        row = score(SERVED, answers, t.split, 12, t.known, 0.0)
        figures[t.name] = {g: row.groups[g].map12 for g in GROUPS}
        ratios += [row.groups[g].map12 / t.best[g] for g in GROUPS if t.best[g] > 0]
    return sum(ratios) / len(ratios), figures


def search(targets: list[Target], start: TrainConfig, passes: int) -> tuple[TrainConfig, list]:
    tried: dict[str, tuple[float, dict]] = {}
    log_rows = []

    def run(config: TrainConfig, label: str) -> float:
        key = msgspec.json.encode(config).decode()
        if key not in tried:
            began = time.perf_counter()
            tried[key] = measure(config, targets)
            objective, figs = tried[key]
            print(f"{objective:.4f}  {label:40s} " + "  ".join(
                f"{n}: all {f['all']:.5f} hist {f['with_history']:.5f}" for n, f in figs.items())
                + f"  ({time.perf_counter() - began:.0f} s)", flush=True)
            log_rows.append({"setting": label, "objective": objective, "figures": figs})
        return tried[key][0]

    best, best_score = start, run(start, "start (current defaults)")
    for p in range(passes):
        changed = False
        for field, values in GRID.items():
            for value in values:
                candidate = msgspec.structs.replace(best, **{field: value})
                result = run(candidate, f"pass {p + 1}: {field}={value}")
                if result > best_score + 1e-6:
                    best, best_score, changed = candidate, result, True
        if not changed:
            break
    return best, log_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.tune",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"),
                        help="folder holding hm/ and online_retail/ (default ../shared/data)")
    parser.add_argument("--datasets", default=",".join(VALIDATION),
                        help=f"comma-separated subset of {', '.join(VALIDATION)}")
    parser.add_argument("--config", type=Path, help="start from this TrainConfig file")
    parser.add_argument("--passes", type=int, default=2, help="coordinate passes (default 2)")
    parser.add_argument("--json", type=Path, help="write every setting tried and the best")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VALIDATION))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; expected {', '.join(VALIDATION)}")
    targets = prepare(args.data_root, names)
    best, rows = search(targets, TrainConfig.load(args.config), args.passes)
    changed = {k: v for k, v in best.to_dict().items() if v != TrainConfig().to_dict()[k]}
    print("best settings (changes from the defaults):", changed or "none")
    if args.json:
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(
            {"validation": VALIDATION, "tried": rows, "best": best.to_dict(),
             "changed": changed})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
