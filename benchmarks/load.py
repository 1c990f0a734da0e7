"""Load benchmark: the running service (real bundle, real Redis) next to a bare Litestar endpoint.

For each server and worker count asked for, it starts the bare app (benchmarks/bare_app.py) and
then the service as subprocesses on free loopback ports, never both at once, and drives every
page-view endpoint with wrk, one random path per request from a realistic id mix (customers
with a profile, unknown customers, anonymous sessions and visitors). Next to the bare endpoint,
``bare_profile`` is the floor of a personal page view: the bare answer after the service's own
profile read (benchmarks/bare_app.py); what a personal endpoint costs above it is the service's
own work. Two modes:

- closed loop (always for bare): as many requests/s as the server manages; prints requests/s,
  p50 and p99, the ratio to the bare endpoint's requests/s in the same run, errors, and the
  server's CPU time per request. The ratio is the figure to compare across machines.
- paced (``--paced 0.6``): each endpoint, bare included, driven at a fixed offered rate of
  0.6 x bare's closed-loop requests/s, latency counted from the time each request was due (no
  coordinated omission): the honest form of "p99 at >= 60% of bare's requests/s". The summary
  says per endpoint whether the targets are met.

Needs wrk (apt-get install wrk) and a Redis. The bundle is ``--bundle``, else the one trained
here before (benchmarks/out/bundles/current), else a new one trained on H&M; its batch profiles
are written to Redis under the dedicated prefix ``bench`` and deleted at the end (unless --keep),
also after a failure or Ctrl-C. The final figures of record, on a quiet machine:

    .venv/bin/python benchmarks/load.py --matrix --paced 0.5 0.6 --repeat 2 --idle-wait 30 --record
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import redis

from artifacts.bundle import Bundle
from artifacts.profiles import KeyScheme
from service.settings import Settings

if __package__ in (None, ""):  # run as a script: make ``benchmarks.*`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchmarks.load_report as report  # noqa: E402
from benchmarks.load_mixes import MAX_PER_SECTION, write_mixes  # noqa: E402
from benchmarks.load_report import commit, machine, redacted  # noqa: E402
from benchmarks.loadgen import (  # noqa: E402
    LUA,
    LUA_PACED,
    Load,
    Measurement,
    Server,
    measure,
    paced_wrk_seconds,
    probe,
    tail,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hm"
OUT = ROOT / "benchmarks" / "out"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PREFIX = "bench"
ENDPOINTS = ("bare", "bare_profile", "recommendations", "similar", "homepage",
             "homepage_anonymous", "size", "session_size")
BARE_ENDPOINTS = ENDPOINTS[:2]  # served by benchmarks/bare_app.py
SERVICE_ENDPOINTS = ENDPOINTS[2:]
#: What each endpoint's probe summarises from its answers.
PROBE_FIELDS = {"recommendations": ("source",), "similar": ("source",),
                "homepage": ("audience",), "homepage_anonymous": ("audience", "source"),
                "size": ("basis", "source"), "session_size": ("basis",)}

_commit = commit  # benchmarks/live.py imports _commit and machine from here


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP: stop the servers, delete the keys, report what was measured."""


@dataclass
class RunContext:
    args: argparse.Namespace
    bundle: Bundle
    paths: dict[str, Path]
    load: Load
    total_runs: int
    mix_notes: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    probes: dict[str, str] = field(default_factory=dict)
    results: list[Measurement] = field(default_factory=list)
    done_runs: int = 0

    def bare_rps(self, server: str, workers: int) -> float | None:
        """Bare's closed-loop requests/s on this server and worker count (paced runs follow
        it)."""
        return next((r.rps for r in self.results if r.endpoint == "bare" and not r.paced
                     and (r.server, r.workers) == (server, workers)), None)


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


# -- bundle and Redis --------------------------------------------------------------------------
def _run_python(args: list[str], log_name: str) -> None:
    log_path = OUT / "logs" / log_name
    log(f"$ {shlex.join(['python', *args])}  (log: {log_path.relative_to(ROOT)})")
    with log_path.open("w") as fh:
        done = subprocess.run([sys.executable, *args], check=False, cwd=ROOT, stdout=fh,
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


def delete_prefix(url: str, prefix: str | None = None) -> int:
    """SCAN + DEL every key under ``prefix`` (default: this benchmark's, :data:`PREFIX`);
    returns how many were deleted."""
    pattern = KeyScheme(PREFIX if prefix is None else prefix).all_pattern()
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


# -- runs --------------------------------------------------------------------------------------
def start(kind: str, server: str, workers: int, ctx: RunContext) -> Server:
    if kind == "bare":
        module_args = ["-m", "benchmarks.bare_app"]
    else:
        module_args = ["-m", "service", "serve", "--bundle", str(ctx.bundle.path),
                       "--redis-url", ctx.args.redis_url]
    module_args += ["--server", server, "--workers", str(workers)]
    env = dict(os.environ, RECO_REDIS_PREFIX=PREFIX, BARE_REDIS_URL=ctx.args.redis_url,
               BARE_REDIS_PREFIX=PREFIX, RECO_NEAR_CACHE_KEYS=str(near_cache_keys(ctx.args)),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    log_path = OUT / "logs" / f"{kind}-{server}-{workers}.log"
    started = Server(module_args, python=sys.executable, cwd=ROOT, env=env, log_path=log_path,
                     cpus=server_cpus(ctx.args))
    log(f"started {kind} on {server} x{workers} at port {started.port} "
        f"(log: {log_path.relative_to(ROOT)})")
    return started


def server_cpus(args: argparse.Namespace) -> frozenset[int] | None:
    """With ``--pin``: every CPU this process may use but the first, which wrk gets."""
    if not args.pin:
        return None
    return frozenset(sorted(os.sched_getaffinity(0))[1:])


def wrk_cpus(args: argparse.Namespace) -> frozenset[int] | None:
    return frozenset(sorted(os.sched_getaffinity(0))[:1]) if args.pin else None


def placement(args: argparse.Namespace) -> str:
    if not args.pin:
        return "wrk on the same cores as the server"
    return (f"wrk pinned to CPU {min(wrk_cpus(args))}, the server and its workers to CPU(s) "
            f"{', '.join(map(str, sorted(server_cpus(args))))} (--pin); Redis and the rest "
            f"of the machine on any")


def near_cache_keys(args: argparse.Namespace) -> int:
    """The service's near-cache size for this run: ``--near-cache-keys``, else its default."""
    return Settings().near_cache_keys if args.near_cache_keys is None else args.near_cache_keys


def plan(args: argparse.Namespace) -> list[tuple[str, str, float | None]]:
    """The runs on one server and worker count, in order: (server kind, endpoint, paced
    fraction of bare's requests/s or None for closed loop). Bare runs first, closed loop
    before paced: the paced rates follow bare's closed-loop figure."""
    runs: list[tuple[str, str, float | None]] = []
    for kind, endpoints in (("bare", list(BARE_ENDPOINTS)), ("service", list(SERVICE_ENDPOINTS))):
        endpoints = [e for e in endpoints if e in args.endpoints]
        for endpoint in endpoints:
            if kind == "bare" or not args.paced_only:
                runs.append((kind, endpoint, None))
            runs += [(kind, endpoint, fraction) for fraction in args.paced]
    return runs


def setups(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(server, workers) to run, in order (``_normalise`` builds the list)."""
    return args.setups


def estimate_s(args: argparse.Namespace) -> float:
    """Rough wall time of the whole run: the timed runs (a paced one also waits for wrk's
    threads and for the last answers), plus start-ups, probes and the profile push."""
    total = 40.0  # profiles to Redis, mixes
    for _kind, _endpoint, fraction in plan(args):
        if fraction is None:
            seconds = args.warmup + args.duration
        else:
            seconds = paced_wrk_seconds(args.duration, args.paced_connections) + (
                paced_wrk_seconds(args.warmup, args.paced_connections) if args.warmup else 0)
        total += len(setups(args)) * args.repeat * (seconds + (1 if args.idle_wait else 0))
    start_ups = 5 + 15 + len(SERVICE_ENDPOINTS) * args.probes / 300  # bare, service, probes
    return total + len(setups(args)) * start_ups


def _run(ctx: RunContext, server: Server, endpoint: str, server_name: str, workers: int,
         fraction: float | None) -> None:
    """``--repeat`` runs of one endpoint; keeps the best (noise on a shared machine only ever
    slows a run down): closed loop the most requests/s, paced the lowest p99. Lists all."""
    rate = None
    if fraction is not None:
        base = ctx.bare_rps(server_name, workers)
        if base is None:
            log(f"{endpoint} paced at {fraction:g} x bare skipped: no bare figure")
            ctx.done_runs += ctx.args.repeat
            return
        rate = fraction * base
        interval_ms = ctx.load.paced_connections / rate * 1000
        if interval_ms < 5:
            log(f"warning: {rate:,.0f} req/s on {ctx.load.paced_connections} connections is a "
                f"request every {interval_ms:.1f} ms per connection, close to wrk's 1 ms timer "
                f"step: raise --paced-connections")
    runs = []
    mode = "closed loop" if rate is None else f"paced {fraction:g} x bare = {rate:,.0f} req/s"
    for run in range(ctx.args.repeat):
        ctx.done_runs += 1
        log(f"[{ctx.done_runs}/{ctx.total_runs}] {endpoint} on {server_name} x{workers}, {mode}"
            + (f", run {run + 1} of {ctx.args.repeat}" if ctx.args.repeat > 1 else ""))
        tag = f"{endpoint}-{server_name}-{workers}-{'closed' if rate is None else fraction}-{run}"
        m = measure(ctx.load, server, ctx.paths[endpoint], endpoint=endpoint,
                    server_name=server_name, workers=workers, log=log, tag=tag, rate=rate)
        log(f"{endpoint:>18} {server_name} x{workers}: {m.rps:8,.0f} req/s  p50 "
            f"{m.p50_ms:.2f} ms  p99 {m.p99_ms:.2f} ms  errors {m.errors}  "
            f"others took {m.other_cpu_share:.0%} of a core")
        runs.append(m)
    if rate is None:
        best = max(runs, key=lambda m: m.rps)
    else:
        best = min(runs, key=lambda m: m.p99_ms)
        best.runs_p99 = sorted(m.p99_ms for m in runs)
    best.runs_rps = sorted(m.rps for m in runs)
    ctx.results.append(best)


def bench_setup(ctx: RunContext, server_name: str, workers: int) -> None:
    """Every planned run on one server and worker count: the bare app first, then the service,
    never both at once (they would share the cores); each server stopped whatever happens."""
    runs = plan(ctx.args)
    for kind in ("bare", "service"):
        mine = [(endpoint, fraction) for k, endpoint, fraction in runs if k == kind]
        if not mine:
            continue
        with start(kind, server_name, workers, ctx) as server:
            server.wait_ready(ctx.args.ready_timeout)
            for endpoint, fraction in mine:
                if kind == "service" and endpoint not in ctx.probes and ctx.args.probes:
                    ctx.probes[endpoint] = probe(server.port, ctx.paths[endpoint],
                                                 ctx.args.probes, PROBE_FIELDS[endpoint])
                    log(f"probe {endpoint}: {ctx.probes[endpoint]}")
                _run(ctx, server, endpoint, server_name, workers, fraction)


# -- record ------------------------------------------------------------------------------------
def record(ctx: RunContext, started: dt.datetime) -> None:
    args, manifest = ctx.args, ctx.bundle.manifest
    counts = ", ".join(f"{v:,} {k}" for k, v in manifest.counts.items())
    command = shlex.join([".venv/bin/python", "benchmarks/load.py", *sys.argv[1:]])
    paced = (f"; paced: {', '.join(f'{f:g}' for f in args.paced)} x bare's closed-loop req/s on "
             f"the same server and workers, {args.paced_connections} connections with one wrk "
             f"thread each on a fixed staggered schedule (benchmarks/loadgen.py LUA_PACED), "
             f"latency from the time each request was due less the generator's own lateness "
             f"(column 'late p99'), best of {args.repeat} by p99" if args.paced else "")
    results = ctx.results
    section = [
        f"## Load: {started:%Y-%m-%d %H:%M} UTC", "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- bundle: {manifest.version} ({manifest.dataset}: {counts})",
        f"- Redis: {redacted(args.redis_url)}, prefix `{PREFIX}`",
        (f"- service near cache: up to {near_cache_keys(args):,} values per worker "
         f"(`RECO_NEAR_CACHE_KEYS`), {Settings().near_cache_ttl_s:g} s; column 'near-cache "
         f"hits': share of the measured run's profile reads it answered"
         if near_cache_keys(args) else "- service near cache: off (`RECO_NEAR_CACHE_KEYS=0`)"),
        f"- code: {commit()}",
        (f"- load: {placement(args)}; closed loop: {args.connections} "
         f"connections, {args.threads} thread(s), best of {args.repeat} by req/s{paced}; "
         f"{args.warmup:g} s warm-up + {args.duration:g} s per run"),
        *[f"- mix {', '.join(endpoints)}: {note}" for endpoints, note in ctx.mix_notes
          if set(endpoints) & set(args.endpoints)],
        *[f"- probe {endpoint}: {text}" for endpoint, text in ctx.probes.items()],
        *[f"- FAILED: {failure}" for failure in ctx.failures], ""]
    closed, paced = report.closed_rows(results), report.paced_rows(results)
    if closed:
        section += ["Closed loop:", "", report.markdown_table(report.CLOSED_HEADER, closed), ""]
    if paced:
        section += ["Paced:", "", report.markdown_table(report.PACED_HEADER, paced), ""]
    verdicts = report.target_lines(results) + report.choice_lines(results)
    section += [*[f"- {line}" for line in verdicts], "", ""]
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nWritten by the scripts in benchmarks/; newest "
                           "last. Each section names the command that produced it.\n\n")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(section))
    log(f"recorded in {RESULTS}")


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
    g.add_argument("--near-cache-keys", type=_bounded(int, 0, 10_000_000), default=None,
                   help="values each service worker keeps from its page-view reads "
                        "(RECO_NEAR_CACHE_KEYS; 0 = off; default: the service's default)")
    g.add_argument("--keep", action="store_true",
                   help="leave the 'bench:*' keys in Redis at the end (default: delete them, "
                        "also after a failure or Ctrl-C)")
    g = p.add_argument_group("what to run")
    g.add_argument("--server", nargs="+", choices=("granian", "uvicorn"), default=["granian"],
                   help="ASGI server(s), each run with every --workers count (default: granian)")
    g.add_argument("--workers", nargs="+", type=_bounded(int, 1, 8), default=[1],
                   help="worker process count(s) of both the service and the bare app "
                        "(default: 1)")
    g.add_argument("--matrix", action="store_true",
                   help="the setups to choose from: granian with 1 and 2 workers and uvicorn "
                        "with 1 (the service refuses uvicorn with several workers: delayed "
                        "ACKs); overrides --server and --workers")
    g.add_argument("--endpoints", nargs="+", choices=("all", *ENDPOINTS), default=["all"],
                   metavar="ENDPOINT",
                   help=f"endpoints to load: all (the default) or some of {', '.join(ENDPOINTS)}. "
                        "bare is always run when --paced is given (its req/s sets the pace); "
                        "'x bare' needs it")
    g.add_argument("--paced", nargs="+", type=_bounded(float, 0.01, 2.0), default=[],
                   metavar="F",
                   help="after the closed-loop runs, drive every endpoint (bare included) at "
                        "F x bare's closed-loop req/s on the same server and workers, for each "
                        "F given, with latency from the time each request was due; the targets "
                        "are checked on these runs (e.g. --paced 0.5 0.6; default: none)")
    g.add_argument("--paced-only", action="store_true",
                   help="with --paced: skip the service's closed-loop runs (bare's still runs: "
                        "it sets the pace)")
    g = p.add_argument_group("load (wrk, loopback only)")
    g.add_argument("--duration", type=_bounded(int, 1, 300), default=15,
                   help="seconds of measured load per run (default: 15, at most 300)")
    g.add_argument("--warmup", type=_bounded(int, 0, 60), default=3,
                   help="seconds of unmeasured load before each measurement, at the same rate: "
                        "fills Redis connection pools and the page cache (default: 3)")
    g.add_argument("--connections", type=_bounded(int, 1, 1024), default=32,
                   help="closed loop: open connections, each one request at a time "
                        "(default: 32)")
    g.add_argument("--threads", type=int, choices=(1, 2), default=1,
                   help="closed loop: wrk threads (default: 1). wrk runs on the same 2 cores as "
                        "the server: one thread takes up to one core; 2 threads take CPU from "
                        "a 2-worker server and lower its figures")
    g.add_argument("--paced-connections", type=_bounded(int, 4, 512), default=64,
                   help="paced: connections, one wrk thread each, each on its own schedule; "
                        "enough that an answer rarely holds back the next request "
                        "(default: 64)")
    g.add_argument("--pin", action="store_true",
                   help="keep wrk on the first CPU and the server with its workers on the "
                        "others, so that neither takes CPU from the other (the generator "
                        "costs more paced than closed loop: unpinned, a paced run can leave "
                        "the server less CPU than the closed-loop run it is paced from)")
    g.add_argument("--repeat", type=_bounded(int, 1, 10), default=1,
                   help="measured runs per endpoint and load; the one with the most req/s "
                        "(closed loop) or the lowest p99 (paced) is reported, all are listed "
                        "(default: 1)")
    g.add_argument("--n", type=_bounded(int, 1, 100), default=12,
                   help="items per answer, the n= query parameter; per section on the "
                        f"homepages, at most {MAX_PER_SECTION} (default: 12)")
    g.add_argument("--paths", type=_bounded(int, 100, 1_000_000), default=20_000,
                   help="paths per endpoint in the random mix (default: 20000)")
    g.add_argument("--known-share", type=_bounded(float, 0, 1), default=0.8,
                   help="share of customer paths (recommendations, homepage, size) for "
                        "customers with a profile; the rest are unknown ids (default: 0.8)")
    g.add_argument("--seed", type=int, default=7, help="seed of the mixes and of wrk's picks "
                   "(default: 7)")
    g.add_argument("--probes", type=_bounded(int, 0, 10_000), default=200,
                   help="requests per service endpoint fetched once before the load, to "
                        "report statuses and answer sources (default: 200; 0: none)")
    g.add_argument("--idle-wait", type=_bounded(float, 0, 600), default=0.0,
                   help="before each measurement wait up to this many seconds for other "
                        "processes to leave the cores idle (a shared machine); 0: do not wait "
                        "(default: 0). The 'other CPU' column shows what they took anyway")
    g.add_argument("--ready-timeout", type=float, default=120.0,
                   help="seconds to wait for a server's /ready (default: 120)")
    p.add_argument("--record", action="store_true",
                   help="append a dated section with command, machine, versions, bundle, mixes, "
                        "tables and verdicts to benchmarks/RESULTS.md (not after Ctrl-C; a setup "
                        "that failed is listed as such)")
    return p


def _signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP raise :class:`Interrupted` once (the ``finally`` blocks then
    stop the servers and delete the keys); repeats while that runs are only acknowledged."""
    caught = []

    def handler(signum: int, frame) -> None:
        caught.append(signum)
        if len(caught) == 1:
            raise Interrupted(signal.Signals(signum).name)
        log("cleaning up (stopping servers, deleting Redis keys): a moment")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


def _normalise(args: argparse.Namespace) -> None:
    if args.matrix:
        args.server, args.workers = ["granian", "uvicorn"], [1, 2]
    args.setups = []
    for server, workers in product(dict.fromkeys(args.server), sorted(set(args.workers))):
        if server == "uvicorn" and workers > 1:
            log(f"uvicorn x{workers} left out: the service refuses uvicorn with several "
                f"workers (their small answers wait ~40 ms for delayed ACKs)")
        else:
            args.setups.append((server, workers))
    if "all" in args.endpoints:
        args.endpoints = list(ENDPOINTS)
    if args.paced and "bare" not in args.endpoints:
        log("--paced: running bare too (its closed-loop req/s sets the pace)")
        args.endpoints = ["bare", *args.endpoints]
    args.paced = sorted(set(args.paced))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _normalise(args)
    if args.connections < args.threads:
        sys.exit("--connections must be at least --threads")
    if args.paced_only and not args.paced:
        sys.exit("--paced-only needs --paced F")
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        sys.exit("--pin needs at least 2 CPUs: one for wrk, the others for the server")
    if shutil.which("wrk") is None:
        print("error: wrk not found; install it: apt-get install wrk", file=sys.stderr)
        return 2
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        print(f"error: Redis at {redacted(args.redis_url)}: {exc}", file=sys.stderr)
        return 3
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    _signals()
    runs = len(setups(args)) * len(plan(args)) * args.repeat
    log(f"{runs} measured runs on {len(setups(args))} setup(s), about "
        f"{estimate_s(args) / 60:.0f} min (Ctrl-C stops the servers, deletes the keys and "
        f"reports what was measured)")
    ctx: RunContext | None = None
    failed = interrupted = False
    try:
        bundle_path, pushed = prepare_bundle(args)
        bundle = Bundle.open(bundle_path)
        log(f"bundle {bundle.version}: {bundle.manifest.counts}")
        if not pushed:
            delete_prefix(args.redis_url)
            _run_python(["-m", "training", "push-profiles", "--bundle", str(bundle.path),
                         "--redis-url", args.redis_url, "--redis-prefix", PREFIX, "--quiet"],
                        "push-profiles.log")
        paths, notes = write_mixes(bundle, OUT / "mix", count=args.paths,
                                   known_share=args.known_share, n=args.n, seed=args.seed)
        for endpoints, note in notes:
            log(f"id mix {', '.join(endpoints)}: {note}")
        lua, paced_lua = OUT / "mix" / "random_path.lua", OUT / "mix" / "paced_path.lua"
        lua.write_text(LUA)
        paced_lua.write_text(LUA_PACED)
        load = Load(lua=lua, log_dir=OUT / "logs", connections=args.connections,
                    threads=args.threads, duration_s=args.duration, warmup_s=args.warmup,
                    seed=args.seed, idle_wait_s=args.idle_wait, paced_lua=paced_lua,
                    paced_connections=args.paced_connections, wrk_cpus=wrk_cpus(args))
        ctx = RunContext(args=args, bundle=bundle, paths=paths, load=load, total_runs=runs,
                         mix_notes=notes)
        for server, workers in setups(args):
            try:
                bench_setup(ctx, server, workers)
            except RuntimeError as exc:
                log(f"{server} x{workers} failed: {exc}")
                ctx.failures.append(f"{server} x{workers}: {str(exc).splitlines()[0]}")
                failed = True
    except Interrupted as exc:
        log(f"interrupted ({exc}): servers stopped")
        interrupted = True
    finally:
        try:
            _clean_redis(args)
        except Interrupted:  # the first signal came during the clean-up: finish it
            interrupted = True
            _clean_redis(args)
    log(f"took {(dt.datetime.now(dt.UTC) - started).total_seconds() / 60:.1f} min")
    if ctx is not None and ctx.results:
        print(report.summary(ctx.results))
        for failure in ctx.failures:
            print(f"FAILED: {failure}")
        if args.record and not interrupted:
            record(ctx, started)
        elif args.record:
            log("not recorded: the run was interrupted")
    return 130 if interrupted else 1 if failed else 0


def _clean_redis(args: argparse.Namespace) -> None:
    try:
        if args.keep:
            log(f"kept the '{PREFIX}:*' keys in Redis (--keep)")
        else:
            log(f"deleted {delete_prefix(args.redis_url):,} '{PREFIX}:*' keys from Redis")
    except redis.RedisError as exc:
        log(f"could not delete the '{PREFIX}:*' keys: {exc}")


if __name__ == "__main__":
    raise SystemExit(main())
