"""Load benchmark: the running service (real bundle, real Redis) next to a bare Litestar endpoint.

For each server and worker count asked for, it starts the bare app (benchmarks/bare_app.py) and
then the service as subprocesses on free loopback ports, drives each endpoint with wrk for a
fixed time, one random path per request from a realistic id mix, and prints requests/s, p50 and
p99 latency, the ratio to the bare endpoint's requests/s measured in the same run, errors, and the
server's CPU time per request. The ratio is the figure to compare across machines.

Needs wrk (apt-get install wrk) and a Redis. The bundle is ``--bundle``, else the one trained
here before (benchmarks/out/bundles/current), else a new one trained on H&M; its batch profiles
are written to Redis under the dedicated prefix ``bench`` and deleted at the end (unless --keep).

wrk is a closed loop: each connection sends its next request when the previous answer arrives,
so at saturation the mean latency is about connections / requests-per-second (Little's law).

    .venv/bin/python benchmarks/load.py --matrix --record
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from itertools import product
from pathlib import Path

import numpy as np
import redis

from artifacts.bundle import Bundle
from artifacts.profiles import KeyScheme

if __package__ in (None, ""):  # run as a script: make ``benchmarks.*`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.loadgen import LUA, Load, Measurement, Server, measure, probe, tail  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hm"
OUT = ROOT / "benchmarks" / "out"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PREFIX = "bench"
ENDPOINTS = ("bare", "recommendations", "similar", "homepage")
SERVICE_ENDPOINTS = ENDPOINTS[1:]
P99_TARGET_MS = 10.0
BARE_RATIO_TARGET = 0.5


@dataclass
class RunContext:
    args: argparse.Namespace
    bundle: Bundle
    paths: dict[str, Path]
    load: Load
    probes: dict[str, str] = field(default_factory=dict)
    results: list[Measurement] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


# -- bundle and Redis --------------------------------------------------------------------------
def _run_python(args: list[str], log_name: str) -> None:
    log_path = OUT / "logs" / log_name
    log(f"$ {shlex.join(['python', *args])}  (log: {log_path.relative_to(ROOT)})")
    with log_path.open("w") as fh:
        done = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=fh,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): see {log_path}\n{tail(log_path)}")


def prepare_bundle(args: argparse.Namespace) -> tuple[Path, bool]:
    """(bundle path, profiles already in Redis): the given, reused or newly trained bundle."""
    if args.bundle:
        return Path(args.bundle), False
    root = OUT / "bundles"
    if (root / "current").exists() and not args.retrain:
        log(f"reusing {root / 'current'} (--retrain trains a new one)")
        return root / "current", False
    if not args.data.is_dir():
        sys.exit(f"no data at {args.data}: pass --data or --bundle")
    delete_prefix(args.redis_url)
    _run_python(["-m", "training", "train", "--dataset", args.dataset, "--data", str(args.data),
                 "--out", str(root), "--redis-url", args.redis_url, "--redis-prefix", PREFIX,
                 "--quiet"], "train.log")
    return root / "current", True


def delete_prefix(url: str) -> int:
    """SCAN + DEL every key under the benchmark's prefix; returns how many were deleted."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=KeyScheme(PREFIX).all_pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


# -- id mixes ----------------------------------------------------------------------------------
def write_mixes(bundle: Bundle, args: argparse.Namespace) -> dict[str, Path]:
    """One path per line per endpoint, as the Lua script reads them.

    recommendations: ``--known-share`` customers with a batch profile, the rest random ids of the
    same shape that no profile has; similar: items with neighbours or ALS factors (sold in the
    training window), uniformly, so the mmap'd neighbour rows are hit all over; homepage:
    the recommendations customer ids.
    """
    rng = random.Random(args.seed)
    users = [record.user_id for record in bundle.profile_records()]
    if not users:
        sys.exit(f"bundle {bundle.version} has no profiles: nothing to personalise")
    known = set(users)
    n_known = round(args.paths * args.known_share)
    user_ids = rng.choices(users, k=n_known)
    width = max(len(u) for u in users)
    while len(user_ids) < args.paths:
        candidate = f"{rng.getrandbits(4 * width):0{width}x}"
        if candidate not in known:
            user_ids.append(candidate)
    rng.shuffle(user_ids)
    has_neighbours = np.asarray(bundle["neighbours_idx"][:, 0]) >= 0
    seen = np.asarray(bundle["item_factors"]).any(axis=1)
    items = np.flatnonzero(has_neighbours | seen)
    if items.size == 0:
        sys.exit(f"bundle {bundle.version} has no item with neighbours or sales")
    ids = bundle.items.ids
    item_ids = [ids[i] for i in rng.choices(items.tolist(), k=args.paths)]
    query = f"?n={args.n}"
    lines = {
        "bare": ["/bare"],
        "recommendations": [f"/v1/users/{u}/recommendations{query}" for u in user_ids],
        "similar": [f"/v1/items/{i}/similar{query}" for i in item_ids],
        "homepage": [f"/v1/users/{u}/homepage{query}" for u in user_ids],  # n per section
    }
    folder = OUT / "mix"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in lines.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text("\n".join(rows) + "\n")
    log(f"id mix: {len(users):,} customers with a profile, {n_known:,} known + "
        f"{args.paths - n_known:,} unknown customer paths; {items.size:,} of {len(ids):,} items "
        f"with neighbours or sales")
    return paths


# -- runs --------------------------------------------------------------------------------------
def start(kind: str, server: str, workers: int, ctx: RunContext) -> Server:
    if kind == "bare":
        module_args = ["-m", "benchmarks.bare_app"]
    else:
        module_args = ["-m", "service", "serve", "--bundle", str(ctx.bundle.path),
                       "--redis-url", ctx.args.redis_url]
    module_args += ["--server", server, "--workers", str(workers)]
    env = dict(os.environ, RECO_REDIS_PREFIX=PREFIX,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    log_path = OUT / "logs" / f"{kind}-{server}-{workers}.log"
    started = Server(module_args, python=sys.executable, cwd=ROOT, env=env, log_path=log_path)
    log(f"started {kind} on {server} x{workers} at port {started.port} "
        f"(log: {log_path.relative_to(ROOT)})")
    return started


def bench_setup(ctx: RunContext, server_name: str, workers: int) -> None:
    """Bare app first, then the service, never both at once: they would share the cores.
    Of ``--repeat`` runs per endpoint the one with the most requests/s is kept (noise on a
    shared machine only ever slows a run down); all are listed."""
    wanted = ctx.args.endpoints
    for kind, endpoints in (("bare", ["bare"]), ("service", list(SERVICE_ENDPOINTS))):
        endpoints = [e for e in endpoints if e in wanted]
        if not endpoints:
            continue
        server = start(kind, server_name, workers, ctx)
        try:
            server.wait_ready(ctx.args.ready_timeout)
            for endpoint in endpoints:
                if kind == "service" and endpoint not in ctx.probes:
                    ctx.probes[endpoint] = probe(server.port, ctx.paths[endpoint],
                                                 ctx.args.probes)
                    log(f"{endpoint}: {ctx.probes[endpoint]}")
                runs = []
                for run in range(ctx.args.repeat):
                    m = measure(ctx.load, server, ctx.paths[endpoint], endpoint=endpoint,
                                server_name=server_name, workers=workers, log=log,
                                tag=f"{endpoint}-{server_name}-{workers}-{run}")
                    log(f"{endpoint:>15} {server_name} x{workers}: {m.rps:8.0f} req/s  p50 "
                        f"{m.p50_ms:.2f} ms  p99 {m.p99_ms:.2f} ms  errors {m.errors}  "
                        f"others took {m.other_cpu_share:.0%} of a core")
                    runs.append(m)
                best = max(runs, key=lambda m: m.rps)
                best.runs_rps = sorted(m.rps for m in runs)
                ctx.results.append(best)
        finally:
            server.stop()


# -- report ------------------------------------------------------------------------------------
HEADER = ("endpoint", "server", "workers", "req/s", "p50 ms", "p99 ms", "x bare", "errors",
          "server CPU us/req", "wrk CPU", "Redis CPU", "other CPU", "req/s of runs")


def table_rows(results: list[Measurement]) -> list[tuple[str, ...]]:
    bare = {(r.server, r.workers): r.rps for r in results if r.endpoint == "bare"}
    rows = []
    for r in results:
        base = bare.get((r.server, r.workers))
        rows.append((r.endpoint, r.server, str(r.workers), f"{r.rps:,.0f}", f"{r.p50_ms:.2f}",
                     f"{r.p99_ms:.2f}", f"{r.rps / base:.2f}" if base else "-", r.errors,
                     f"{r.server_cpu_us:,.0f}", f"{r.wrk_cpu_share:.0%}",
                     f"{r.redis_cpu_share:.0%}", f"{r.other_cpu_share:.0%}",
                     " ".join(f"{v:.0f}" for v in r.runs_rps) if len(r.runs_rps) > 1 else "-"))
    return rows


def markdown_table(results: list[Measurement]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "|".join(" --- " if i < 3 else " ---: " for i in range(len(HEADER))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)


def text_table(results: list[Measurement]) -> str:
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for row in rows:
        cells = enumerate(zip(row, widths, strict=True))
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in cells))
    return "\n".join(lines)


def target_lines(results: list[Measurement]) -> list[str]:
    bare = {(r.server, r.workers): r.rps for r in results if r.endpoint == "bare"}
    lines = []
    for r in results:
        if r.endpoint != "recommendations":
            continue
        base = bare.get((r.server, r.workers))
        ratio = f"{r.rps / base:.2f} x bare" if base else "no bare figure"
        ok = r.p99_ms < P99_TARGET_MS and (base is None or r.rps >= BARE_RATIO_TARGET * base)
        lines.append(f"recommendations on {r.server} x{r.workers}: p99 {r.p99_ms:.2f} ms "
                     f"(target < {P99_TARGET_MS:g}), {ratio} (target >= {BARE_RATIO_TARGET:g}): "
                     f"{'met' if ok else 'NOT met'}")
    return lines


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    versions = ", ".join(f"{name} {_version(name)}"
                         for name in ("litestar", "granian", "uvicorn", "redis", "msgspec"))
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()
    return (f"{os.cpu_count()} cores ({cpu}), {mem_kb / 2**20:.1f} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}, {versions}, "
            f"wrk {wrk[1] if len(wrk) > 1 else '?'}")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def record(ctx: RunContext, started: dt.datetime) -> None:
    args, manifest = ctx.args, ctx.bundle.manifest
    counts = ", ".join(f"{v:,} {k}" for k, v in manifest.counts.items())
    command = shlex.join([".venv/bin/python", "benchmarks/load.py", *sys.argv[1:]])
    section = [
        f"## Load: {started:%Y-%m-%d %H:%M} UTC", "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- bundle: {manifest.version} ({manifest.dataset}: {counts})",
        f"- Redis: {_redacted(args.redis_url)}, prefix `{PREFIX}`",
        f"- code: {_commit()}",
        f"- load: wrk, {args.connections} connections, {args.threads} thread(s) on the same "
        f"cores as the server, {args.warmup:g} s warm-up + {args.duration:g} s per endpoint, "
        f"best of {args.repeat} by req/s; "
        f"n={args.n}; recommendations {args.known_share:.0%} known customers, rest unknown ids; "
        f"similar: items with neighbours or sales, uniform; homepage: the recommendations "
        f"customer mix, n items per section",
        *[f"- probe {endpoint}: {text}" for endpoint, text in ctx.probes.items()],
        "", markdown_table(ctx.results), "",
        *[f"- {line}" for line in target_lines(ctx.results)], "", ""]
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nWritten by the scripts in benchmarks/; newest "
                           "last. Each section names the command that produced it.\n\n")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(section))
    log(f"recorded in {RESULTS.relative_to(ROOT)}")


def _commit() -> str:
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


def _redacted(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    return f"{url.split('://')[0]}://***@{tail}" if sep else url


# -- command line ------------------------------------------------------------------------------
def _bounded(kind, low, high):
    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/load.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("bundle and Redis")
    g.add_argument("--bundle", type=Path, help="bundle directory or bundles root to serve "
                   "(default: benchmarks/out/bundles/current, trained first when missing)")
    g.add_argument("--retrain", action="store_true",
                   help="train a new bundle into benchmarks/out/bundles even if one is there")
    g.add_argument("--dataset", default="hm", help="dataset adapter for training (default: hm)")
    g.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"dataset directory for training (default: {DEFAULT_DATA})")
    g.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                   help="Redis holding the profiles under prefix 'bench' "
                        "(default: redis://127.0.0.1:6379/0)")
    g.add_argument("--keep", action="store_true",
                   help="leave the 'bench:*' keys in Redis at the end (default: delete them)")
    g = p.add_argument_group("what to run")
    g.add_argument("--server", nargs="+", choices=("granian", "uvicorn"), default=["granian"],
                   help="ASGI server(s), each run with every --workers count (default: granian)")
    g.add_argument("--workers", nargs="+", type=_bounded(int, 1, 8), default=[1],
                   help="worker process count(s) of both the service and the bare app "
                        "(default: 1)")
    g.add_argument("--matrix", action="store_true",
                   help="shorthand for --server granian uvicorn --workers 1 2")
    g.add_argument("--endpoints", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS),
                   help="endpoints to load (default: all; 'x bare' needs bare)")
    g = p.add_argument_group("load (wrk, loopback only)")
    g.add_argument("--duration", type=_bounded(int, 1, 300), default=15,
                   help="seconds of measured load per endpoint (default: 15, at most 300)")
    g.add_argument("--warmup", type=_bounded(int, 0, 60), default=3,
                   help="seconds of unmeasured load before each measurement: fills Redis "
                        "connection pools and the page cache (default: 3)")
    g.add_argument("--connections", type=_bounded(int, 1, 1024), default=32,
                   help="open connections, each one request at a time (default: 32)")
    g.add_argument("--threads", type=int, choices=(1, 2), default=1,
                   help="wrk threads (default: 1). wrk runs on the same 2 cores as the server: "
                        "one thread takes up to one core; 2 threads take CPU from a 2-worker "
                        "server and lower its figures")
    g.add_argument("--repeat", type=_bounded(int, 1, 10), default=1,
                   help="measured runs per endpoint; the one with the most req/s is reported, "
                        "all are listed (default: 1)")
    g.add_argument("--n", type=_bounded(int, 1, 100), default=12,
                   help="items per answer, the n= query parameter (default: 12)")
    g.add_argument("--paths", type=_bounded(int, 100, 1_000_000), default=20_000,
                   help="paths per endpoint in the random mix (default: 20000)")
    g.add_argument("--known-share", type=_bounded(float, 0, 1), default=0.8,
                   help="share of recommendation paths for customers with a profile; the rest "
                        "are unknown ids (default: 0.8)")
    g.add_argument("--seed", type=int, default=7, help="seed of the mixes and of wrk's picks "
                   "(default: 7)")
    g.add_argument("--probes", type=_bounded(int, 0, 10_000), default=200,
                   help="requests per service endpoint fetched once before the load, to "
                        "report statuses and answer sources (default: 200)")
    g.add_argument("--idle-wait", type=_bounded(float, 0, 600), default=0.0,
                   help="before each measurement wait up to this many seconds for other "
                        "processes to leave the cores idle (a shared machine); 0: do not wait "
                        "(default: 0). The 'other CPU' column shows what they took anyway")
    g.add_argument("--ready-timeout", type=float, default=120.0,
                   help="seconds to wait for a server's /ready (default: 120)")
    p.add_argument("--record", action="store_true",
                   help="append a dated section with command, machine, bundle and table to "
                        "benchmarks/RESULTS.md")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.matrix:
        args.server, args.workers = ["granian", "uvicorn"], [1, 2]
    if args.connections < args.threads:
        sys.exit("--connections must be at least --threads")
    if shutil.which("wrk") is None:
        print("error: wrk not found; install it: apt-get install wrk", file=sys.stderr)
        return 2
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        print(f"error: Redis at {_redacted(args.redis_url)}: {exc}", file=sys.stderr)
        return 3
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    failed = False
    try:
        bundle_path, pushed = prepare_bundle(args)
        bundle = Bundle.open(bundle_path)
        log(f"bundle {bundle.version}: {bundle.manifest.counts}")
        if not pushed:
            delete_prefix(args.redis_url)
            _run_python(["-m", "training", "push-profiles", "--bundle", str(bundle.path),
                         "--redis-url", args.redis_url, "--redis-prefix", PREFIX, "--quiet"],
                        "push-profiles.log")
        paths = write_mixes(bundle, args)
        lua = OUT / "mix" / "random_path.lua"
        lua.write_text(LUA)
        load = Load(lua=lua, log_dir=OUT / "logs", connections=args.connections,
                    threads=args.threads, duration_s=args.duration, warmup_s=args.warmup,
                    seed=args.seed, idle_wait_s=args.idle_wait)
        ctx = RunContext(args=args, bundle=bundle, paths=paths, load=load)
        for server, workers in product(args.server, args.workers):
            try:
                bench_setup(ctx, server, workers)
            except RuntimeError as exc:
                log(f"{server} x{workers} failed: {exc}")
                failed = True
    finally:
        if args.keep:
            log(f"kept the '{PREFIX}:*' keys in Redis (--keep)")
        else:
            log(f"deleted {delete_prefix(args.redis_url):,} '{PREFIX}:*' keys from Redis")
    print(text_table(ctx.results))
    for line in target_lines(ctx.results):
        print(line)
    if args.record and ctx.results:
        record(ctx, started)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
