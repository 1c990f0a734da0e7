"""Live events and batch picks on a real bundle and real Redis, each next to its floor.

* events: wrk POSTs batches of live events (views, carts, purchases, returns of known customers,
  new customers and anonymous sessions; every event id unique) to ``POST /v1/events`` and, in
  the same run and on the same server setup, to a bare Litestar endpoint that decodes the same
  bodies and stores nothing (``benchmarks/bare_app.py``). Reports events/s and p50/p99 per batch.
* picks: ``python -m service picks`` for every customer with a profile, with 1 and 2 worker
  processes, next to the floor of reading those customers' keys from Redis in pipelined chunks
  with no picking at all. Reports customers/s.

    .venv/bin/python benchmarks/live.py --record

Needs wrk and Redis, as benchmarks/load.py (whose bundle it reuses: benchmarks/out/bundles).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import redis

from artifacts.bundle import Bundle
from artifacts.profiles import KeyScheme

if __package__ in (None, ""):  # run as a script: make ``benchmarks.*`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.load import (OUT, PREFIX, RESULTS, ROOT, _commit, delete_prefix,  # noqa: E402
                             machine)
from benchmarks.loadgen import LUA_DONE, Load, Server, measure  # noqa: E402

EVENTS_TARGET = 5_000
PICKS_TARGET = 10_000
POST_LUA = """\
-- Written by benchmarks/live.py: POSTs the bodies of args[1] in order, each once per pass.
local bodies = {}
local next_body = 0
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, bodies[next_body])
end
""" + LUA_DONE


def log(message: str) -> None:
    print(f"[live] {message}", file=sys.stderr, flush=True)


def write_bodies(bundle: Bundle, users: list[str], path: Path, batches: int, size: int,
                 seed: int) -> None:
    """``batches`` JSON bodies of ``size`` events each, one per line, every event id unique."""
    rng = random.Random(seed)
    items = [bundle.items.id(int(i)) for i in bundle["popular_idx"][0] if i >= 0]
    kinds = ["view"] * 60 + ["cart"] * 20 + ["purchase"] * 15 + ["return"] * 5
    with path.open("w") as fh:
        for b in range(batches):
            events = []
            for k in range(size):
                event = {"event_id": f"bench-{seed}-{b}-{k}", "type": rng.choice(kinds),
                         "item_id": rng.choice(items)}
                who = rng.random()
                if who < 0.7:
                    event["user_id"] = rng.choice(users)
                elif who < 0.85:
                    event["user_id"] = f"bench-new-{rng.randrange(20_000)}"
                else:
                    event["session_id"] = f"bench-sess-{rng.randrange(50_000)}"
                if event["type"] in ("view", "cart") and rng.random() < 0.5:
                    event["size"] = rng.choice(["XS", "S", "M", "L", "XL"])
                events.append(event)
            fh.write(json.dumps({"events": events}, separators=(",", ":")) + "\n")


def bench_events(args, bundle: Bundle, users: list[str]) -> list[dict]:
    rows = []
    env = dict(os.environ, RECO_REDIS_PREFIX=PREFIX, PYTHONPATH=str(ROOT))
    for workers in args.workers:
        for kind in ("bare", "service"):
            bodies = OUT / "mix" / f"events-{kind}-{workers}.ndjson"
            write_bodies(bundle, users, bodies, args.bodies, args.batch, seed=workers)
            module = (["-m", "benchmarks.bare_app"] if kind == "bare" else
                      ["-m", "service", "serve", "--bundle", str(bundle.path),
                       "--redis-url", args.redis_url])
            server = Server([*module, "--server", "granian", "--workers", str(workers)],
                            python=sys.executable, cwd=ROOT, env=env,
                            log_path=OUT / "logs" / f"live-{kind}-{workers}.log")
            try:
                server.wait_ready(60)
                path = "/bare/events" if kind == "bare" else "/v1/events"
                load = Load(lua=OUT / f"post-{kind}.lua", log_dir=OUT / "logs",
                            connections=args.connections, duration_s=args.duration, warmup_s=0)
                load.lua.write_text(POST_LUA.replace("wrk.path", f'"{path}"'))
                m = measure(load, server, bodies, endpoint=f"events ({kind})",
                            server_name="granian", workers=workers, log=log,
                            tag=f"events-{kind}-{workers}")
            finally:
                server.stop()
            wrapped = m.rps * args.duration > args.bodies
            rows.append({"what": f"events via {'bare POST' if kind == 'bare' else 'POST /v1/events'}",
                         "workers": workers, "events_s": m.rps * args.batch,
                         "batches_s": m.rps, "p50": m.p50_ms, "p99": m.p99_ms,
                         "errors": m.errors, "note": "bodies repeated (duplicates)" if wrapped else ""})
            log(f"{rows[-1]}")
    return rows


def bench_picks(args, bundle: Bundle, users: list[str]) -> list[dict]:
    users_file = OUT / "mix" / "picks-users.txt"
    users_file.write_text("\n".join(users) + "\n")
    rows = []
    # floor: the same customers' keys read from Redis in pipelined chunks, nothing else
    client = redis.Redis.from_url(args.redis_url)
    keys = KeyScheme(PREFIX)
    started = time.perf_counter()
    for start in range(0, len(users), 1000):
        pipe = client.pipeline(transaction=False)
        for user in users[start:start + 1000]:
            pipe.mget(keys.user_keys(user))
        pipe.execute()
    floor = len(users) / (time.perf_counter() - started)
    client.close()
    rows.append({"what": "Redis read floor (pipelined MGET, no picking)", "workers": 1,
                 "customers_s": floor})
    env = dict(os.environ, RECO_REDIS_PREFIX=PREFIX, RECO_REDIS_URL=args.redis_url,
               RECO_BUNDLE_DIR=str(bundle.path))
    for workers in args.picks_workers:
        out = OUT / f"picks-{workers}.ndjson"
        cmd = [sys.executable, "-m", "service", "picks", "--users", str(users_file), "--out",
               str(out), "--campaign", "bench", "--workers", str(workers), "--quiet"]
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"picks failed: {done.stderr}")
        found = re.search(r"([\d,]+) customers -> .*?\(([\d,]+) customers/s\)", done.stderr)
        rows.append({"what": f"python -m service picks --workers {workers}", "workers": workers,
                     "customers_s": float(found.group(2).replace(",", "")),
                     "wall_s": wall, "customers": int(found.group(1).replace(",", ""))})
        log(f"{rows[-1]}")
    return rows


def report(events: list[dict], picks: list[dict]) -> str:
    lines = ["| what | granian workers | events/s | batches/s | p50 ms | p99 ms | errors |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in events:
        lines.append(f"| {r['what']} | {r['workers']} | {r['events_s']:,.0f} | "
                     f"{r['batches_s']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']}"
                     f"{' ' + r['note'] if r['note'] else ''} |")
    lines += ["", "| what | processes | customers/s | wall s (incl. start-up) |",
              "| --- | ---: | ---: | ---: |"]
    for r in picks:
        wall = f"{r['wall_s']:.1f}" if "wall_s" in r else "-"
        lines.append(f"| {r['what']} | {r['workers']} | {r['customers_s']:,.0f} | {wall} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/live.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=OUT / "bundles" / "current",
                        help="bundle to serve (default: benchmarks/out/bundles/current, made by "
                             "benchmarks/load.py)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="granian worker counts for the events run (default: 1 2)")
    parser.add_argument("--picks-workers", type=int, nargs="+", default=[1, 2],
                        help="process counts for the picks run (default: 1 2)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--bodies", type=int, default=3000,
                        help="distinct request bodies (event ids are unique within them)")
    parser.add_argument("--record", action="store_true",
                        help="append a dated section to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if not (args.bundle / "manifest.json").exists() and not args.bundle.is_symlink():
        sys.exit(f"no bundle at {args.bundle}: run benchmarks/load.py once or pass --bundle")
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    (OUT / "mix").mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    bundle = Bundle.open(args.bundle)
    delete_prefix(args.redis_url)
    log(f"pushing {bundle.manifest.counts.get('profiles', 0):,} profiles under '{PREFIX}'")
    subprocess.run([sys.executable, "-m", "training", "push-profiles", "--bundle",
                    str(bundle.path), "--redis-url", args.redis_url, "--redis-prefix", PREFIX,
                    "--quiet"], cwd=ROOT, check=True)
    users = [r.user_id for r in bundle.profile_records()]
    try:
        picks = bench_picks(args, bundle, users)
        events = bench_events(args, bundle, users)
    finally:
        log(f"deleted {delete_prefix(args.redis_url):,} '{PREFIX}:*' keys")
    table = report(events, picks)
    print(table)
    best_events = max(r["events_s"] for r in events if "v1" in r["what"])
    best_picks = max(r["customers_s"] for r in picks if "service picks" in r["what"])
    verdict = (f"- events: best {best_events:,.0f}/s (target >= {EVENTS_TARGET:,}); picks: best "
               f"{best_picks:,.0f} customers/s (target >= {PICKS_TARGET:,})")
    print(verdict)
    if args.record:
        section = [f"## Live events and batch picks: {started:%Y-%m-%d %H:%M} UTC", "",
                   f"- command: `{shlex.join(['.venv/bin/python', 'benchmarks/live.py', *sys.argv[1:]])}`",
                   f"- machine: {machine()}", f"- code: {_commit()}",
                   f"- bundle: {bundle.version} ({bundle.manifest.dataset}, "
                   f"{len(users):,} customers with a profile)",
                   f"- events: wrk, {args.connections} connections, {args.duration} s per run, "
                   f"{args.batch} events per request (60% views, 20% carts, 15% purchases, "
                   "5% returns; 70% known customers, 15% new, 15% anonymous sessions)",
                   "", table, "", verdict, "", ""]
        with RESULTS.open("a") as fh:
            fh.write("\n".join(section))
        log(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
