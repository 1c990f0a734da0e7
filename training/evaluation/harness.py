"""The evaluation harness: every model on one split, measured in one run.

:func:`evaluate` fits the served recommendations and each baseline on ``split.train``, answers
every test customer, and scores the answers over three groups of test customers (all, with
history, without history) and by history length. Nothing here is cached between runs and
nothing is read from earlier results: each row is measured now, on this split.

The catalogue-coverage denominator is the number of catalogue items bought at least once before
the split (what any model could have learnt about).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence

import msgspec

from training.config import TrainConfig
from training.evaluation import baselines
from training.evaluation.baselines import Answers
from training.evaluation.metrics import Figures, figures
from training.evaluation.served import served_answers
from training.evaluation.split import Split

log = logging.getLogger(__name__)
GROUPS = ("all", "with_history", "without_history")
#: Upper bounds (inclusive) of the history-length buckets, in training purchases.
HISTORY_BUCKETS = (0, 1, 3, 7, 15, 63)
SERVED = "served"
LABELS = {
    SERVED: "served (for you, this project)",
    "popular_7d": "popularity, last 7 days",
    "popular_market": "popularity per market, last 7 days",
    "als": "implicit ALS, defaults",
    "bm25": "implicit BM25 item-item, defaults",
    "buy_again": "buy again (repeat purchase)",
}


class GroupFigures(msgspec.Struct, kw_only=True):
    customers: int
    map12: float
    recall: float
    ndcg: float
    coverage: float
    personal: float
    """Share of the group the model answered itself (the rest got the popularity fill)."""


class ModelRow(msgspec.Struct, kw_only=True):
    name: str
    label: str
    seconds: float
    groups: dict[str, GroupFigures]
    map12_by_history: list[float | None]
    """MAP@12 per history bucket (None: no test customer in that bucket)."""


class Evaluation(msgspec.Struct, kw_only=True):
    """Everything one run measured; ``--json`` writes this, the report is drawn from it."""

    dataset: str
    split_at: str
    test_end: str  # exclusive
    k: int
    train_purchases: int
    train_customers: int
    catalogue_known: int
    test_purchases: int
    history_buckets: list[str]
    customers_by_history: list[int]
    rows: list[ModelRow]
    config: dict
    notes: list[str] = []
    created_at: str = ""

    def row(self, name: str) -> ModelRow:
        return next(r for r in self.rows if r.name == name)


def bucket_labels() -> list[str]:
    labels, low = [], 0
    for high in HISTORY_BUCKETS:
        labels.append(str(high) if high == low else f"{low}-{high}")
        low = high + 1
    return labels + [f"{low}+"]


def _bucket(n: int) -> int:
    return next((b for b, high in enumerate(HISTORY_BUCKETS) if n <= high), len(HISTORY_BUCKETS))


def _round(f: Figures) -> GroupFigures:
    return GroupFigures(customers=f.customers, map12=round(f.map12, 6), recall=round(f.recall, 6),
                        ndcg=round(f.ndcg, 6), coverage=round(f.coverage, 6),
                        personal=round(f.personal, 4))


def history_groups(split: Split) -> list[list[str]]:
    """Test customers per history bucket (:data:`HISTORY_BUCKETS`)."""
    by_bucket: list[list[str]] = [[] for _ in range(len(HISTORY_BUCKETS) + 1)]
    for user in split.users:
        by_bucket[_bucket(split.history.get(user, 0))].append(user)
    return by_bucket


def score(name: str, answers: Answers, split: Split, k: int, known: int,
          seconds: float) -> ModelRow:
    """One table row: figures per customer group and MAP@12 per history bucket."""
    groups_users = {
        "all": split.users,
        "with_history": [u for u in split.users if split.with_history(u)],
        "without_history": [u for u in split.users if not split.with_history(u)],
    }
    groups = {g: _round(figures(answers.lists, split.actual, users, k, known, answers.personal))
              for g, users in groups_users.items()}
    by_history = [round(figures(answers.lists, split.actual, users, k, known).map12, 6)
                  if users else None for users in history_groups(split)]
    return ModelRow(name=name, label=LABELS.get(name, name), seconds=round(seconds, 2),
                    groups=groups, map12_by_history=by_history)


def model_runners(split: Split, view: baselines.TrainView, config: TrainConfig, n: int,
                  include: Sequence[str] | None = None
                  ) -> dict[str, Callable[[], Answers]]:
    """The models of the table that apply to this data, in table order."""
    runners: dict[str, Callable[[], Answers]] = {
        SERVED: lambda: served_answers(split, config, n)[0],
        "popular_7d": lambda: baselines.popular_7d(view, split, n),
    }
    if baselines.has_markets(split):
        runners["popular_market"] = lambda: baselines.popular_market(view, split, n)
    runners["als"] = lambda: baselines.als(view, split, n, seed=config.seed)
    runners["bm25"] = lambda: baselines.bm25(view, split, n)
    if baselines.has_repeats(view):
        runners["buy_again"] = lambda: baselines.buy_again(view, split, n)
    if include is not None:
        runners = {name: run for name, run in runners.items() if name in include}
    return runners


def evaluate(split: Split, config: TrainConfig, *, k: int = 12,
             include: Sequence[str] | None = None, progress: bool = True) -> Evaluation:
    """Fit and score every applicable model on ``split`` (only ``include`` when given)."""
    n = max(k, 12)
    view = baselines.train_view(split)
    known = int((view.counts.getnnz(axis=0) > 0).sum())
    rows = []
    for name, run in model_runners(split, view, config, n, include).items():
        started = time.perf_counter()
        if progress:
            log.info("evaluating %s ...", LABELS.get(name, name))
        answers = run()
        row = score(name, answers, split, k, known, time.perf_counter() - started)
        if progress:
            log.info("%s: MAP@12 %.5f (with history %.5f) in %.1f s", name,
                     row.groups["all"].map12, row.groups["with_history"].map12, row.seconds)
        rows.append(row)
    notes = [
        "each personalised baseline answers customers without history, and tops up short "
        "lists, with the last-7-days popular items",
        "implicit models recommend with filter_already_liked_items=False (repeat purchases "
        "are allowed, as in the served recommendations)",
    ]
    return Evaluation(
        dataset=split.train.name, split_at=split.split_at.isoformat(),
        test_end=split.test_end.isoformat(), k=k,
        train_purchases=split.train.purchases.height, train_customers=len(view.users),
        catalogue_known=known, test_purchases=split.test.height,
        history_buckets=bucket_labels(),
        customers_by_history=[len(users) for users in history_groups(split)], rows=rows, config=config.to_dict(), notes=notes,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
