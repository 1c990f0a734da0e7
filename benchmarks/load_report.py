"""The load benchmark's report: tables, the targets and whether they are met, the machine.

Used by ``benchmarks/load.py`` (and, for :func:`machine` and :func:`commit`, by the other
benchmark scripts). Pure functions of a list of :class:`benchmarks.loadgen.Measurement`.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from benchmarks.loadgen import Measurement

ROOT = Path(__file__).resolve().parents[1]

#: The endpoints the targets are about ("recommendations and homepage"); the size endpoints
#: are measured and reported next to them, without a target.
TARGET_ENDPOINTS = ("recommendations", "similar", "homepage", "homepage_anonymous")
#: A paced run kept up with its offered rate when it answered at least this share of it (the
#: answers to the last requests of the window arrive after it).
KEPT_UP = 0.98
#: A paced run offered the rate asked when its schedule held at least this share of it (a wrk
#: thread that starts late skips its first requests).
OFFERED = 0.99
#: Without a paced run, a closed-loop maximum under this share of a target's share of bare
#: shows the target not met (the endpoint cannot serve that rate at all).
CAPACITY = 0.9


@dataclass(frozen=True)
class Target:
    """p99 at most (or under) ``p99_ms`` while serving ``share`` x bare's requests/s."""

    name: str
    share: float
    p99_ms: float
    inclusive: bool = True

    def p99_ok(self, p99_ms: float) -> bool:
        return p99_ms <= self.p99_ms if self.inclusive else p99_ms < self.p99_ms

    def __str__(self) -> str:
        return (f"{self.name}: p99 {'<=' if self.inclusive else '<'} {self.p99_ms:g} ms at "
                f">= {self.share:g} x bare")


TARGETS = (Target("production readiness", 0.6, 5.0),
           Target("first load target", 0.5, 10.0, inclusive=False))

CLOSED_HEADER = ("endpoint", "server", "workers", "req/s", "p50 ms", "p99 ms", "x bare",
                 "errors", "server CPU us/req", "wrk CPU", "Redis CPU", "other CPU",
                 "near-cache hits", "req/s of runs")
PACED_HEADER = ("endpoint", "server", "workers", "offered", "offered req/s", "req/s", "x bare",
                "p50 ms", "p90 ms", "p99 ms", "max ms", "service p99 ms", "late p99 ms",
                "errors", "server CPU us/req", "wrk CPU", "Redis CPU", "other CPU",
                "near-cache hits", "p99 of runs")


def _bare(results: list[Measurement]) -> dict[tuple[str, int], float]:
    return {(r.server, r.workers): r.rps for r in results if r.endpoint == "bare" and not r.paced}


def _cpu(r: Measurement) -> tuple[str, ...]:
    return (r.errors, f"{r.server_cpu_us:,.0f}", f"{r.wrk_cpu_share:.0%}",
            f"{r.redis_cpu_share:.0%}", f"{r.other_cpu_share:.0%}",
            "-" if r.near_cache_hits is None else f"{r.near_cache_hits:.0%}")


def closed_rows(results: list[Measurement]) -> list[tuple[str, ...]]:
    bare = _bare(results)
    rows = []
    for r in (r for r in results if not r.paced):
        base = bare.get((r.server, r.workers))
        rows.append((r.endpoint, r.server, str(r.workers), f"{r.rps:,.0f}", f"{r.p50_ms:.2f}",
                     f"{r.p99_ms:.2f}", f"{r.rps / base:.2f}" if base else "-", *_cpu(r),
                     " ".join(f"{v:.0f}" for v in r.runs_rps) if len(r.runs_rps) > 1 else "-"))
    return rows


def paced_rows(results: list[Measurement]) -> list[tuple[str, ...]]:
    bare = _bare(results)
    rows = []
    for r in (r for r in results if r.paced):
        base = bare[(r.server, r.workers)]
        rows.append((r.endpoint, r.server, str(r.workers), f"{r.asked_rps / base:.2f} x bare",
                     f"{r.offered_rps:,.0f}", f"{r.rps:,.0f}", f"{r.rps / base:.2f}",
                     f"{r.p50_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.max_ms:.1f}",
                     f"{r.service_p99_ms:.2f}", f"{r.late_p99_ms:.2f}", *_cpu(r),
                     " ".join(f"{v:.2f}" for v in r.runs_p99) if len(r.runs_p99) > 1 else "-"))
    return rows


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " if i < 3 else " ---: " for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = enumerate(zip(row, widths, strict=True))
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in cells))
    return "\n".join(lines)


def _verdict(target: Target, endpoint: str, server: str, workers: int,
             results: list[Measurement]) -> tuple[bool | None, str]:
    """(met, why): met True/False from a paced run at >= the target's share of bare (the
    lowest such share that meets it, else the lowest). Without one, from the closed loop: met
    when it shows the target even at saturation (a stricter test), not met when its most
    req/s fall well short of the share, else None (not shown)."""
    base = _bare(results).get((server, workers))
    if base is None:
        return None, "no bare figure"
    mine = [r for r in results if (r.endpoint, r.server, r.workers) == (endpoint, server, workers)]
    paced = sorted((r for r in mine if r.paced and r.asked_rps >= target.share * base - 1e-6),
                   key=lambda r: r.asked_rps)
    bare_at = {round(r.asked_rps): r for r in results if r.endpoint == "bare" and r.paced
               and (r.server, r.workers) == (server, workers)}
    if paced:
        checks = []
        for r in paced:
            offered = r.offered_rps >= OFFERED * r.asked_rps
            kept_up = r.rps >= KEPT_UP * r.offered_rps
            ok = offered and kept_up and r.error_count == 0 and target.p99_ok(r.p99_ms)
            checks.append((r, offered, kept_up, ok))
        r, offered, kept_up, ok = next((c for c in checks if c[3]), checks[0])
        floor = bare_at.get(round(r.asked_rps))
        why = (f"paced at {r.asked_rps / base:.2f} x bare ({r.offered_rps:,.0f} req/s "
               f"offered{'' if offered else ': the generator fell short'}, "
               f"{r.rps:,.0f} answered{'' if kept_up else ': fell behind'}): "
               f"p99 {r.p99_ms:.2f} ms, errors {r.errors}"
               + (f"; bare at that load: p99 {floor.p99_ms:.2f} ms" if floor else ""))
        return (ok if offered or ok else None), why
    closed = next((r for r in mine if not r.paced), None)
    if closed is None:
        below = sorted({f"{r.asked_rps / base:.2f}" for r in mine if r.paced})
        return None, (f"paced at {', '.join(below)} x bare only; run --paced {target.share:g}"
                      if below else "not measured")
    ratio = closed.rps / base
    why = (f"closed loop only: {ratio:.2f} x bare at saturation, p99 {closed.p99_ms:.2f} ms, "
           f"errors {closed.errors}")
    if ratio >= target.share and target.p99_ok(closed.p99_ms) and closed.error_count == 0:
        return True, why
    if ratio < CAPACITY * target.share:  # it cannot serve that rate at all
        return False, why
    return None, why + f"; run --paced {target.share:g} to measure p99 at that load"


def target_lines(results: list[Measurement]) -> list[str]:
    """Per server and worker count, per endpoint, per target: met or not, and from what."""
    lines = []
    seen = []
    for r in results:
        key = (r.endpoint, r.server, r.workers)
        if r.endpoint == "bare" or key in seen:
            continue
        seen.append(key)
        reference = r.endpoint not in TARGET_ENDPOINTS  # measured next to them, no target
        for target in TARGETS[:1] if reference else TARGETS:
            met, why = _verdict(target, *key, results)
            status = {True: "met", False: "NOT met", None: "not shown"}[met]
            if reference:
                status = {True: "would be met", False: "would not be met",
                          None: "not shown"}[met] + " (no target for this endpoint)"
            lines.append(f"{r.endpoint} on {r.server} x{r.workers}, {target}: {status} - {why}")
    return lines


def choice_lines(results: list[Measurement]) -> list[str]:
    """The server and worker count to run: the one meeting the first target on the most target
    endpoints, then the one whose bare serves the most (so the same share is more req/s)."""
    bare = _bare(results)
    scores = []
    for server, workers in bare:
        measured = {r.endpoint for r in results if (r.server, r.workers) == (server, workers)}
        endpoints = [e for e in TARGET_ENDPOINTS if e in measured]
        if not endpoints:
            continue
        met = sum(bool(_verdict(TARGETS[0], e, server, workers, results)[0]) for e in endpoints)
        scores.append((met, bare[(server, workers)], server, workers, len(endpoints)))
    lines = [f"{server} x{workers}: {TARGETS[0].name} met on {met} of {n} target endpoints; bare "
             f"{rps:,.0f} req/s, so {TARGETS[0].share:g} x bare = "
             f"{TARGETS[0].share * rps:,.0f} req/s"
             for met, rps, server, workers, n in sorted(scores, reverse=True)]
    if len(scores) > 1:
        met, _, server, workers, _ = max(scores)
        lines.append(f"choice by this run: {server} x{workers} (" + (
            f"most target endpoints meeting {TARGETS[0].name}, then the most bare req/s)" if met
            else f"none meets {TARGETS[0].name} anywhere: the most bare req/s)"))
    return lines


def summary(results: list[Measurement]) -> str:
    """The tables and verdicts as printed at the end of a run."""
    parts = []
    if any(not r.paced for r in results):
        parts += ["closed loop (each connection sends when its answer is in):",
                  text_table(CLOSED_HEADER, closed_rows(results)), ""]
    if any(r.paced for r in results):
        parts += ["paced (fixed offered rate; latency from the time each request was due):",
                  text_table(PACED_HEADER, paced_rows(results)), ""]
    parts += target_lines(results) + choice_lines(results)
    return "\n".join(parts)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    names = ("litestar", "granian", "uvicorn", "uvloop", "httptools", "redis", "msgspec")
    versions = ", ".join(f"{name} {_version(name)}" for name in names)
    wrk = subprocess.run(["wrk", "--version"], check=False, capture_output=True,
                         text=True).stdout.split()
    return (f"{os.cpu_count()} cores ({cpu}), {mem_kb / 2**20:.1f} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}, {versions}, "
            f"wrk {wrk[1] if len(wrk) > 1 else '?'}")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def commit() -> str:
    """The checked-out commit, read from .git (best effort; uncommitted edits not shown)."""
    git = ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).exists():
            return f"{(git / ref).read_text().strip()[:12]} ({ref.rsplit('/', 1)[-1]})"
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return f"{line[:12]} ({ref.rsplit('/', 1)[-1]})"
    except OSError:
        pass
    return "unknown"


def redacted(url: str) -> str:
    _, sep, tail = url.rpartition("@")
    return f"{url.split('://')[0]}://***@{tail}" if sep else url
