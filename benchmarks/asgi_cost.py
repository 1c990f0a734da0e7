"""CPU cost per request inside the ASGI app: the service's page-view endpoints next to bare.

No server and no network client: requests are handed straight to the ASGI callables, ``C`` at a
time on one event loop, and the process CPU time is divided by the request count. The server
(granian, uvicorn) and the load generator cost the same for every endpoint, so this isolates
what the framework, our handlers and the Redis client cost, with much less noise than a load
test on a shared 2-core machine. It is the tool for profiling work; the load test
(benchmarks/load.py) stays the figure of record.

    .venv/bin/python benchmarks/asgi_cost.py --bundle benchmarks/out/bundles/current

Needs a Redis; the bundle's profiles are written under the prefix ``asgi-cost`` (or
``$ASGI_COST_PREFIX``) and deleted at the end. Runs at the same time need different prefixes:
one run's clean-up would otherwise delete the other's profiles mid-run, and its known customers
would be measured as unknown ones.

The service runs with its near cache of page-view reads (``service/store/near_cache.py``) at
its default size. Paths are requested in turn from ``--distinct`` of them (20,000): with fewer
requests than that per run, every read misses the cache and goes to Redis; ``--distinct 300``
measures hits, ``--near-cache-keys 0`` the service without the cache.

Instructions instead of seconds (repeatable whatever else the machine does): run it under
callgrind with instrumentation off at start and ``--callgrind``, which switches it on around the
measured runs only (one endpoint per run: the total is then that endpoint's)::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \
        .venv/bin/python benchmarks/asgi_cost.py --callgrind --endpoints homepage \
        --requests 2000 --repeat 1
    callgrind_annotate /tmp/cg.out | head -30   # total Ir / 2000 = instructions per request
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifacts.bundle import Bundle  # noqa: E402
from benchmarks import bare_app  # noqa: E402
from benchmarks.load import delete_prefix  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

PREFIX = os.environ.get("ASGI_COST_PREFIX", "asgi-cost")


def _scope(path_and_query: str) -> dict:
    path, _, query = path_and_query.partition("?")
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def drive(app, paths: list[str], total: int, concurrency: int) -> tuple[float, dict]:
    """CPU microseconds per request over ``total`` requests; and the status counts."""
    statuses: dict[int, int] = {}
    queue = iter(range(total))

    async def worker() -> None:
        def send_factory():
            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] = statuses.get(message["status"], 0) + 1
            return send

        send = send_factory()
        for i in queue:
            await app(_scope(paths[i % len(paths)]), _receive, send)

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - start) / total * 1e6, statuses


async def lifespan_start(app) -> asyncio.Queue:
    """Run the ASGI lifespan startup; returns the queue that later delivers the shutdown."""
    inbox: asyncio.Queue = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()

    async def send(message: dict) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set_result(message)

    await inbox.put({"type": "lifespan.startup"})
    asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
    result = await started
    if result["type"] != "lifespan.startup.complete":
        sys.exit(f"startup failed: {result}")
    return inbox


def mixes(bundle: Bundle, n: int, count: int, seed: int, known_share: float) -> dict[str, list]:
    rng = random.Random(seed)
    users = [r.user_id for r in bundle.profile_records()]
    user_ids = [rng.choice(users) if rng.random() < known_share else f"{rng.getrandbits(64):016x}"
                for _ in range(count)]
    import numpy as np
    has = np.flatnonzero(np.asarray(bundle["neighbours_idx"][:, 0]) >= 0)
    items = [bundle.items.ids[i] for i in rng.choices(has.tolist(), k=count)]
    return {
        "bare": ["/bare"],
        "bare_profile": [f"/bare/users/{u}" for u in user_ids],
        "recommendations": [f"/v1/users/{u}/recommendations?n={n}" for u in user_ids],
        "similar": [f"/v1/items/{i}/similar?n={n}" for i in items],
        "homepage": [f"/v1/users/{u}/homepage?n={n}" for u in user_ids],
        "homepage_anonymous": [f"/v1/homepage?n={n}"],
        "size": [f"/v1/users/{u}/size?item_id={i}" for u, i in zip(user_ids, items)],
    }


async def main_async(args: argparse.Namespace) -> None:
    bundle = Bundle.open(args.bundle)
    from training.redis_push import push_profiles
    push_profiles(bundle.profile_records(), args.redis_url, prefix=PREFIX, progress=False)
    try:
        near = {} if args.near_cache_keys is None else {"near_cache_keys": args.near_cache_keys}
        service = create_app(Settings(bundle_dir=str(args.bundle), redis_url=args.redis_url,
                                      redis_prefix=PREFIX, bundle_poll_s=0, **near))
        bare = bare_app.create_app(redis_url=args.redis_url, redis_prefix=PREFIX)
        await lifespan_start(service)
        await lifespan_start(bare)
        paths = mixes(bundle, args.n, args.distinct, args.seed, args.known_share)
        for endpoint in args.endpoints:
            app = bare if endpoint.startswith("bare") else service
            await drive(app, paths[endpoint], args.requests // 5, args.concurrency)  # warm-up
            gc.collect()
            _instrument(args.callgrind, "on")
            runs = [await drive(app, paths[endpoint], args.requests, args.concurrency)
                    for _ in range(args.repeat)]
            _instrument(args.callgrind, "off")
            best = min(r[0] for r in runs)
            print(f"{endpoint:>16}: {best:7.1f} us/request (runs: "
                  f"{' '.join(f'{r[0]:.1f}' for r in runs)}); statuses {runs[-1][1]}", flush=True)
    finally:
        delete_prefix(args.redis_url, prefix=PREFIX)


def _instrument(enabled: bool, state: str) -> None:
    """Switch callgrind's instrumentation of this process ``on`` or ``off`` (with --callgrind)."""
    if enabled:
        subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True,
                       stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/asgi_cost.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("benchmarks/out/bundles/current"))
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--endpoints", nargs="+", default=["bare", "bare_profile", "recommendations",
                                                      "similar", "homepage", "size"])
    p.add_argument("--requests", type=int, default=20_000, help="requests per run")
    p.add_argument("--repeat", type=int, default=3, help="runs per endpoint; the best is shown")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--known-share", type=float, default=0.8)
    p.add_argument("--distinct", type=int, default=20_000,
                   help="distinct paths per endpoint, requested in turn (default 20,000: with "
                        "fewer requests than that, every page-view read misses the near cache)")
    p.add_argument("--near-cache-keys", type=int, default=None,
                   help="the service's RECO_NEAR_CACHE_KEYS (0 = off; default: its default)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--callgrind", action="store_true",
                   help="switch callgrind instrumentation on around the measured runs only")
    args = p.parse_args(argv)
    import uvloop
    uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
