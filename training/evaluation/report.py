"""Presenting an :class:`~training.evaluation.harness.Evaluation`: the terminal table, the JSON
file and a Markdown report with PNG plots beside it.

``write_report(evaluation, out_dir)`` writes ``report.md``, ``map_by_model.png`` (MAP@12 per
model and customer group) and ``map_by_history.png`` (MAP@12 per model by the number of training
purchases of the customer) into ``out_dir``; the Markdown links the plots by relative path.
Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec

from training.evaluation.harness import GROUPS, SERVED, Evaluation

GROUP_TITLES = {"all": "all", "with_history": "with history", "without_history": "no history"}
#: How the defaults in training/config.py were chosen; repeated in every report.
TUNING_NOTE = (
    "The served settings (the defaults of `training/config.py`) were chosen on earlier "
    "validation splits, never on the test split: H&M trained before 2020-09-20 and validated "
    "on 2020-09-20; Online Retail trained before 2011-09-01 and validated on 2011-09-01 .. "
    "2011-09-30. `python -m training.evaluation.tune` prints every setting it tried there and "
    "the best by the mean, over both datasets and over all customers and those with history, "
    "of served MAP@12 divided by the best baseline's. Two fields deliberately differ from the search's best at a cost within noise "
    "(a week of popularity with a half-day half-life rather than one day, so small shops' "
    "market lists stay full; repurchase_min_ratio 0.25 rather than 0, so rarely repeated "
    "categories are never shown again to their buyers); training/config.py documents each "
    "field. The test split is only measured, after the choice."
)


def _date(iso: str) -> str:
    return iso[:10]


def period(ev: Evaluation) -> str:
    last = dt.datetime.fromisoformat(ev.test_end) - dt.timedelta(microseconds=1)
    days = (dt.datetime.fromisoformat(ev.test_end) - dt.datetime.fromisoformat(ev.split_at))
    return (f"train before {_date(ev.split_at)} ({ev.train_purchases:,} purchases, "
            f"{ev.train_customers:,} customers), test {_date(ev.split_at)} .. "
            f"{last.date()} ({max(1, round(days.total_seconds() / 86400))} day(s), "
            f"{ev.test_purchases:,} purchases)")


def _rows(ev: Evaluation) -> list[list[str]]:
    k = ev.k
    header = ["model", "customers", "n", "MAP@12", f"recall@{k}", f"NDCG@{k}", "coverage",
              "personal", "seconds"]
    out = [header]
    for row in ev.rows:
        for g, group in enumerate(GROUPS):
            f = row.groups[group]
            out.append([row.label if g == 0 else "", GROUP_TITLES[group], f"{f.customers:,}",
                        f"{f.map12:.5f}", f"{f.recall:.5f}", f"{f.ndcg:.5f}",
                        f"{f.coverage:.4f}", f"{f.personal:.0%}",
                        f"{row.seconds:.1f}" if g == 0 else ""])
    return out


def lead_lines(ev: Evaluation) -> list[str]:
    """One line per group: the served MAP@12 against the best baseline."""
    served = ev.row(SERVED) if any(r.name == SERVED for r in ev.rows) else None
    others = [r for r in ev.rows if r.name != SERVED]
    if served is None or not others:
        return []
    lines = []
    for group in GROUPS:
        best = max(others, key=lambda r: r.groups[group].map12)
        mine, theirs = served.groups[group].map12, best.groups[group].map12
        ratio = f"{mine / theirs:.2f}x" if theirs > 0 else "n/a"
        verdict = "leads" if mine > theirs else "does NOT lead"
        lines.append(f"{GROUP_TITLES[group]}: served {mine:.5f} vs best baseline {best.name} "
                     f"{theirs:.5f} ({ratio}): {verdict}")
    return lines


def format_table(ev: Evaluation) -> str:
    rows = _rows(ev)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [f"{ev.dataset}: {period(ev)}"]
    for i, r in enumerate(rows):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:])]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += [""] + lead_lines(ev)
    return "\n".join(lines)


def markdown_table(ev: Evaluation) -> str:
    rows = _rows(ev)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for r in rows[1:]:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


def write_json(ev: Evaluation, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(ev)))
    return path


def _plots(ev: Evaluation, out_dir: Path) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r.name for r in ev.rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for g, group in enumerate(GROUPS):
        ax.bar(x + (g - 1) * 0.27, [r.groups[group].map12 for r in ev.rows], 0.27,
               label=GROUP_TITLES[group])
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("MAP@12")
    ax.set_title(f"{ev.dataset}: MAP@12 per model (test from {_date(ev.split_at)})")
    ax.legend()
    fig.tight_layout()
    by_model = "map_by_model.png"
    fig.savefig(out_dir / by_model, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels = [f"{b}\n({n:,})" for b, n in zip(ev.history_buckets, ev.customers_by_history)]
    for r in ev.rows:
        values = [np.nan if v is None else v for v in r.map12_by_history]
        ax.plot(labels, values, marker="o", label=r.name,
                linewidth=2.5 if r.name == SERVED else 1.2)
    ax.set_xlabel("training purchases of the customer (test customers)")
    ax.set_ylabel("MAP@12")
    ax.set_title(f"{ev.dataset}: MAP@12 by history length")
    ax.legend()
    fig.tight_layout()
    by_history = "map_by_history.png"
    fig.savefig(out_dir / by_history, dpi=110)
    plt.close(fig)
    return by_model, by_history


def write_report(ev: Evaluation, out_dir: Path, command: str | None = None) -> Path:
    """Write ``report.md`` and its two PNG plots into ``out_dir``; returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_model, by_history = _plots(ev, out_dir)
    buckets = ", ".join(f"{b} ({n:,} customers)"
                        for b, n in zip(ev.history_buckets, ev.customers_by_history))
    lines = [
        f"# Recommendation quality: {ev.dataset}", "",
        f"{period(ev)}. Measured {ev.created_at}; every row in the same run on the same split.",
        "",
    ]
    if command:
        lines += ["```sh", command, "```", ""]
    lines += [
        markdown_table(ev), "",
        *[f"- {line}" for line in lead_lines(ev)], "",
        "MAP@12 as in the H&M competition (precision at each hit, divided by "
        f"min(relevant, 12)); recall@{ev.k} and NDCG@{ev.k} with binary gains; coverage = "
        f"distinct recommended items / {ev.catalogue_known:,} items bought before the split; "
        "personal = share of customers the model answered itself. Customers are those with at "
        "least one test purchase; \"with history\" bought before the split.", "",
        f"![MAP@12 per model]({by_model})", "",
        f"![MAP@12 by history length]({by_history})", "",
        f"History buckets (training purchases): {buckets}.", "",
        "## How the settings were chosen", "", TUNING_NOTE, "",
        "## Notes", "",
        *[f"- {note}" for note in ev.notes], "",
        "## Configuration of the served model", "",
        "```json", msgspec.json.format(msgspec.json.encode(ev.config)).decode(), "```", "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
