"""The homepage against the single "for you" list and popularity, per customer segment.

    python -m training.evaluation.homepage --dataset hm --data ../shared/data/hm \\
        --split-at 2020-09-21 --test-days 1 [--visible 4] [--json OUT]

Trains on the purchases before the split (as the harness's "served" row: a real bundle with the
test customers' profiles, opened with :class:`artifacts.bundle.Bundle`), then answers every
test customer with :func:`artifacts.homepage.build` - the code the service runs - and scores
what the page shows first: the union of its sections in display order, ``--visible`` items of
each (what a carousel shows without scrolling), the first 12. Rows, all measured in this run on
this split with :func:`training.evaluation.metrics.figures` (MAP@12, recall@12, NDCG@12,
coverage):

* ``for_you``: the single "for you" list (:func:`artifacts.ranking.for_you`, the served row);
* ``popularity``: the harness's last-7-days popularity baseline;
* ``homepage``: the page by the bundle's segment rules;
* ``<section> first``: the same page for everyone with that section moved to the top of the
  default layout (``default`` itself starts with "for you") - which ordering each segment
  gains from.

Customers without history get the market homepage in every homepage row. Groups: all, with and
without history, and each segment of the trainer (from the test customers' profiles; a customer
in several segments counts in each). There are no live events offline, so "recently viewed" is
never on these pages; "back in your size" needs a size model (not on H&M: no sizes).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import logging
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from artifacts.bundle import Bundle
from artifacts.catalog import Catalog
from artifacts.homepage import (PERSONAL, SEGMENTS, UNKNOWN, HomepageView, Layout, build)
from artifacts.ranking import for_you
from training.config import TrainConfig
from training.data import load_dataset
from training.evaluation import baselines
from training.evaluation.metrics import figures
from training.evaluation.split import Split, parse_date, time_split
from training.pipeline import export, fit

log = logging.getLogger(__name__)
K = 12
FIRST = ("on_sale", "new_arrivals", "trending", "buy_again", "because_you_bought",
         "back_in_size")
NOW = 0.0  # no live events offline: the session window never matters


class Row(msgspec.Struct):
    name: str
    groups: dict[str, dict[str, float]]  # group -> customers, map12, recall, ndcg, coverage


class HomepageEvaluation(msgspec.Struct, kw_only=True):
    dataset: str
    split_at: str
    test_end: str
    visible: int
    group_sizes: dict[str, int]
    rows: list[Row]
    layouts: dict[str, int]
    """Test customers with history per layout the rules chose."""
    seconds: float
    created_at: str = ""


def _ordering(view: HomepageView, first: str | None) -> HomepageView:
    """The view with no segment rules and the default layout, ``first`` moved to the top."""
    order = list(view.rules.layouts["default"].sections)
    if first is not None:
        order = [first] + [s for s in order if s != first]
    rules = msgspec.structs.replace(
        view.rules, priority=[],
        layouts={"default": Layout(sections=order, reason=f"{first or 'for_you'} first")})
    forced = copy.copy(view)
    forced.rules = rules
    return forced


def _groups(split: Split, profiles: dict) -> dict[str, list[str]]:
    groups = {"all": split.users,
              "with_history": [u for u in split.users if u in profiles],
              "no_history": [u for u in split.users if u not in profiles]}
    for segment in SEGMENTS:
        groups[segment] = [u for u in groups["with_history"] if segment in profiles[u].segments]
    groups["in_no_segment"] = [u for u in groups["with_history"]
                               if not set(profiles[u].segments) & set(SEGMENTS)]
    return groups


def evaluate_homepage(split: Split, config: TrainConfig, *, visible: int = 4,
                      progress: bool = False) -> HomepageEvaluation:
    started = time.perf_counter()
    fitted = fit(split.train, config, progress=progress)
    users = [u for u in split.users if split.with_history(u)]
    with tempfile.TemporaryDirectory(prefix="reco-homepage-") as tmp:
        path, _ = export(fitted, config, tmp, profile_users=users, progress=progress)
        bundle = Bundle.open(path)
        view = HomepageView(Catalog(bundle))
        wanted = set(split.actual)
        profiles = {r.user_id: r.profile for r in bundle.profile_records() if r.user_id in wanted}
        lists, layouts = _answer(view, split, profiles, visible)
    tv = baselines.train_view(split)
    lists["popularity"] = baselines.popular_7d(tv, split, K).lists
    known = int((tv.counts.getnnz(axis=0) > 0).sum())
    groups = _groups(split, profiles)
    order = ["for_you", "popularity", "homepage", "default", *(f"{s} first" for s in FIRST)]
    rows = []
    for name in order:
        per_group = {}
        for group, members in groups.items():
            f = figures(lists[name], split.actual, members, K, known)
            per_group[group] = {"customers": f.customers, "map12": round(f.map12, 6),
                                "recall": round(f.recall, 6), "ndcg": round(f.ndcg, 6),
                                "coverage": round(f.coverage, 6)}
        rows.append(Row(name, per_group))
    return HomepageEvaluation(
        dataset=split.train.name, split_at=split.split_at.isoformat(),
        test_end=split.test_end.isoformat(), visible=visible,
        group_sizes={g: len(m) for g, m in groups.items()}, rows=rows, layouts=layouts,
        seconds=round(time.perf_counter() - started, 1),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def _answer(view: HomepageView, split: Split, profiles: dict, visible: int):
    catalog = view.catalog
    views = {"homepage": view, "default": _ordering(view, None),
             **{f"{s} first": _ordering(view, s) for s in FIRST}}
    lists: dict[str, dict[str, list[str]]] = {name: {} for name in ("for_you", *views)}
    market_pages: dict[str | None, list[str]] = {}
    layouts: dict[str, int] = {}
    for user in split.users:
        profile = profiles.get(user)
        market = split.markets.get(user)
        if market is None or not catalog.knows_market(market):
            market = (profile.market if profile is not None and profile.market
                      and catalog.knows_market(profile.market) else None)
        picked = for_you(catalog, profile, n=K, market=market)
        lists["for_you"][user] = [i.item_id for i in picked.items]
        if profile is None:
            if market not in market_pages:
                page = build(view, profile=None, market=market, n=visible, audience=UNKNOWN,
                             now=NOW)
                market_pages[market] = _shown(page)
            for name in views:
                lists[name][user] = market_pages[market]
            continue
        for name, v in views.items():
            page = build(v, profile=profile, market=market, n=visible, audience=PERSONAL,
                         now=NOW)
            lists[name][user] = _shown(page)
            if name == "homepage":
                layouts[page.layout] = layouts.get(page.layout, 0) + 1
    return lists, layouts


def _shown(page) -> list[str]:
    return [i.item_id for s in page.sections for i in s.items][:K]


# -- presenting -----------------------------------------------------------------------------------
def format_table(ev: HomepageEvaluation, metric: str = "map12") -> str:
    """Rows: customer groups; columns: models and orderings; cells: ``metric``."""
    names = [r.name for r in ev.rows]
    header = ["group", "customers", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, size in ev.group_sizes.items():
        if not size:
            continue
        cells = [f"{r.groups[group][metric]:.5f}" for r in ev.rows]
        lines.append(f"| {group} | {size:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_orderings(ev: HomepageEvaluation) -> list[str]:
    """Per segment and metric (MAP@12, recall@12): the page ordering(s) scoring best (ties
    joined by "="), next to the segment rules' page and the single "for you" list."""
    pages = [r for r in ev.rows if r.name not in ("for_you", "popularity")]
    by_name = {r.name: r for r in ev.rows}
    out = []
    for group, size in ev.group_sizes.items():
        if not size or group in ("all", "no_history"):
            continue
        parts = []
        for metric, label in (("map12", "MAP@12"), ("recall", "recall@12")):
            top = max(r.groups[group][metric] for r in pages)
            best = " = ".join(r.name for r in pages if r.groups[group][metric] == top)
            parts.append(f"{label} best {best} {top:.5f} (segment rules "
                         f"{by_name['homepage'].groups[group][metric]:.5f}, for you list "
                         f"{by_name['for_you'].groups[group][metric]:.5f})")
        out.append(f"{group} ({size:,}): " + "; ".join(parts))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluation.homepage",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="hm, online_retail, canonical or synthetic")
    p.add_argument("--data", type=Path, help="dataset directory (not for synthetic)")
    p.add_argument("--split-at", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--test-days", type=int, metavar="N")
    p.add_argument("--visible", type=int, default=4,
                   help="items of each section counted (default 4); the page's first 12 count")
    p.add_argument("--config", type=Path, help="TrainConfig JSON or TOML file")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not 1 <= args.visible <= K:
        p.error(f"--visible must be between 1 and {K}")
    data = load_dataset(args.dataset, args.data)
    split = time_split(data, parse_date(args.split_at, "--split-at"), args.test_days)
    ev = evaluate_homepage(split, TrainConfig.load(args.config), visible=args.visible)
    print(f"{ev.dataset}: split {ev.split_at[:10]}, test to {ev.test_end[:10]} (exclusive); "
          f"{args.visible} items per section, first {K} of the page; layouts chosen: "
          f"{ev.layouts}; {ev.seconds:.0f} s")
    for metric in ("map12", "recall", "ndcg"):
        print(f"\n{metric}\n{format_table(ev, metric)}")
    print()
    print("\n".join(best_orderings(ev)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(ev)))
        print(f"figures -> {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
