"""Presenting a :class:`~training.evaluation.sizes.SizeEvaluation`: the terminal table, the
JSON file and a Markdown report with the precision-coverage curves as a PNG beside it.

``write_report(evaluation, out_dir)`` writes ``sizes.md`` and ``size_precision_coverage.png``
into ``out_dir`` (the Markdown links the plot by relative path; matplotlib's Agg backend, no
display needed).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec

from training.evaluation.sizes import LEVELS, SERVED, SizeEvaluation

REPORT = "sizes.md"
PLOT = "size_precision_coverage.png"
#: How the size model's settings were chosen; repeated in every report.
TUNING_NOTE = (
    "The settings of the size model (the defaults of `SizeConfig` in "
    "`training/models/sizes.py`: recency half-life, gift rules, smoothing, the served "
    "threshold) were chosen on RentTheRunway trained before 2017-01-01 and validated on "
    "2017-01-01 .. 2017-05-31, and checked on the synthetic shop; the 2017-06-01 test split "
    "was only measured afterwards. The four decision weights are not tuned by hand: each "
    "training run fits them (multinomial logit) on the last 15% of its own training period."
)


def _date(iso: str) -> str:
    return iso[:10]


def period(ev: SizeEvaluation) -> str:
    last = dt.datetime.fromisoformat(ev.test_end) - dt.timedelta(microseconds=1)
    return (f"train before {_date(ev.split_at)} ({ev.train_purchases:,} purchases, "
            f"{ev.train_customers:,} customers), test {_date(ev.split_at)} .. {last.date()}: "
            f"{ev.test_rows:,} sized rows of customers with history ({ev.fit_rows:,} 'fit', "
            f"{ev.small_rows:,} 'small', {ev.large_rows:,} 'large')")


def _rows(ev: SizeEvaluation) -> list[list[str]]:
    header = ["model", "coverage", "accuracy", "all rows"]
    header += [f"P@{level:.0%}" for level in LEVELS] + ["moved right", "seconds"]
    out = [header]
    for row in ev.rows:
        at = [row.precision_at.get(f"{level:.0%}") for level in LEVELS]
        out.append([row.label, f"{row.coverage:.1%}", f"{row.accuracy:.4f}",
                    f"{row.accuracy_all:.4f}", *["-" if v is None else f"{v:.4f}" for v in at],
                    "-" if row.moved_right is None else f"{row.moved_right:.1%}",
                    f"{row.seconds:.1f}"])
    return out


def verdict_lines(ev: SizeEvaluation) -> list[str]:
    """Where the served model stands against the best baseline at each coverage level."""
    served = ev.row(SERVED)
    others = [r for r in ev.rows if r.name != SERVED]
    lines = []
    for level in LEVELS:
        key = f"{level:.0%}"
        mine = served.precision_at.get(key)
        best = max(others, key=lambda r: r.precision_at.get(key) or 0.0)
        theirs = best.precision_at.get(key)
        if mine is None:
            lines.append(f"P@{key}: served does not reach this coverage (abstains: no history, "
                         "size not on offer)")
            continue
        verdict = "beats" if theirs is None or mine > theirs else "does NOT beat"
        lines.append(f"P@{key}: served {mine:.4f} vs best baseline {best.name} "
                     f"{theirs if theirs is None else f'{theirs:.4f}'}: {verdict}")
    return lines


def format_table(ev: SizeEvaluation) -> str:
    rows = _rows(ev)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [f"{ev.dataset}: {period(ev)}"]
    for i, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    answers = ", ".join(f"{k} {v:,}" for k, v in ev.answers.items())
    lines += ["", *verdict_lines(ev), "",
              f"served threshold {ev.served_threshold}; served answers on 'fit' rows: {answers}"]
    return "\n".join(lines)


def markdown_table(ev: SizeEvaluation) -> str:
    rows = _rows(ev)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def write_json(ev: SizeEvaluation, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(ev)))
    return path


def _plot(ev: SizeEvaluation, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in ev.rows:
        ax.plot([p.coverage for p in row.curve], [p.precision for p in row.curve],
                label=row.label, linewidth=2.5 if row.name == SERVED else 1.2)
    served = ev.row(SERVED)
    ax.scatter([served.coverage], [served.accuracy], color="black", zorder=5,
               label=f"served threshold {ev.served_threshold}")
    ax.set_xlabel("coverage (share of 'fit' rows of customers with history answered)")
    ax.set_ylabel("precision (exact size)")
    ax.set_xlim(0, 1)
    ax.set_title(f"{ev.dataset}: preselected size, test from {_date(ev.split_at)}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def write_report(ev: SizeEvaluation, out_dir: Path, command: str | None = None) -> Path:
    """Write ``sizes.md`` and its PNG into ``out_dir``; returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot(ev, out_dir / PLOT)
    answers = ", ".join(f"{k} {v:,}" for k, v in ev.answers.items())
    weights = ", ".join(f"{k} {v:.3f}" for k, v in ev.weights.items())
    lines = [f"# Preselected size: {ev.dataset}", "",
             f"{period(ev)}. Measured {ev.created_at}; every row in the same run on the same "
             f"split (bundle {ev.bundle_version}).", ""]
    if command:
        lines += ["```sh", command, "```", ""]
    lines += [
        markdown_table(ev), "",
        *[f"- {line}" for line in verdict_lines(ev)], "",
        "Coverage and accuracy: at the served threshold (baselines always answer). All rows: "
        "exact hits over every 'fit' row, an abstention counting as a miss. P@x: precision of "
        "the x most confident answers, as a share of all 'fit' rows. Moved right: on rows the "
        "customer found too small (large), the share of answers larger (smaller) than the size "
        "they had.", "",
        f"![precision-coverage curves]({PLOT})", "",
        f"Served answers on 'fit' rows by reason: {answers}. Decision weights: {weights}.", "",
        "## How the settings were chosen", "", TUNING_NOTE, "",
        "## Notes", "", *[f"- {note}" for note in ev.notes], "",
    ]
    path = out_dir / REPORT
    path.write_text("\n".join(lines))
    return path
