"""What measuring requests costs: the same requests through the ASGI app with metrics on and off.

Calls the app in-process through its raw ASGI interface (no server, no sockets, no Redis: the
embedded profile store), so the difference is the metrics middleware and the answer hand-off,
nothing else. Time is the process's CPU time (a busy machine's other processes do not count),
and runs alternate off-on-on-off so that drift cancels; the figure is the median over rounds of
(on - off) per request.

    python benchmarks/metrics_overhead.py --bundle artifacts/bundles
    python benchmarks/metrics_overhead.py --bundle artifacts/bundles --multiprocess

``--multiprocess`` sets ``PROMETHEUS_MULTIPROC_DIR`` (as ``python -m service serve --workers N``
does) before prometheus-client is imported: values then live in memory-mapped files.

On a busy machine CPU times wobble by several microseconds; instruction counts do not. With
``--callgrind on|off`` one app (metrics on or off) answers ``--requests`` GETs of ``--path``
while callgrind counts (switched on and off around them with callgrind_control):

    valgrind --tool=callgrind --instr-atstart=no \
        python benchmarks/metrics_overhead.py --callgrind on --path /health --requests 1000

then (Ir on - Ir off) / requests is the middleware's cost in instructions per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default="artifacts/bundles", help="bundle dir or bundles root")
    p.add_argument("--requests", type=int, default=100, help="requests per route and run")
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--multiprocess", action="store_true",
                   help="prometheus-client multiprocess mode (as with several workers)")
    p.add_argument("--callgrind", choices=("on", "off"),
                   help="count instructions under callgrind: one app, metrics on or off")
    p.add_argument("--path", default="/health", help="the path --callgrind requests")
    return p.parse_args()


async def _drive(app, path: str, n: int) -> float:
    """CPU seconds per request for ``n`` GETs of ``path`` through the app's ASGI interface."""
    path, _, query = path.partition("?")
    base = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": query.encode(), "headers": [(b"host", b"localhost")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    request = {"type": "http.request", "body": b"", "more_body": False}
    statuses = []

    async def receive():
        return request

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.process_time()  # CPU time: waits for a busy machine's other processes excluded
    for _ in range(n):
        await app(dict(base), receive, send)
    elapsed = time.process_time() - start
    if set(statuses) != {200}:
        raise SystemExit(f"{path}: unexpected statuses {sorted(set(statuses))}")
    return elapsed / n


async def middleware_alone(n: int, rounds: int) -> float:
    """CPU seconds the metrics middleware adds around a trivial ASGI app, per request."""
    from service.metrics import MetricsMiddleware

    async def bare(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    measured = MetricsMiddleware(bare)
    base = {"type": "http", "method": "GET", "path_template": "/v1/users/{user_id}/homepage"}

    async def loop(app) -> float:
        start = time.process_time()
        for _ in range(n):
            await app(dict(base), receive, send)
        return (time.process_time() - start) / n

    return (await paired(lambda: loop(measured), lambda: loop(bare), rounds))[2]


async def paired(on, off, rounds: int) -> tuple[float, float, float]:
    """Medians of (off, on, on - off) over ``rounds`` of off-on-on-off (ABBA: drift cancels)."""
    await on()
    await off()
    offs, ons, diffs = [], [], []
    for _ in range(rounds):
        a1, b1, b2, a2 = await off(), await on(), await on(), await off()
        offs.append((a1 + a2) / 2)
        ons.append((b1 + b2) / 2)
        diffs.append((b1 + b2 - a1 - a2) / 2)
    return statistics.median(offs), statistics.median(ons), statistics.median(diffs)


async def callgrind(args: argparse.Namespace) -> None:
    """``--requests`` GETs of ``--path`` with callgrind's instrumentation on around them."""
    import subprocess

    from artifacts.bundle import Bundle
    from service.app import create_app
    from service.settings import Settings
    from service.store import MemoryProfileStore

    bundle = Bundle.open(args.bundle, verify=False)
    app = create_app(Settings(metrics=args.callgrind == "on", bundle_poll_s=0), bundle=bundle,
                     store=MemoryProfileStore(bundle.profile_records()))
    async with app.lifespan():
        await _drive(app, args.path, 300)
        control = ["callgrind_control", "-i"]
        subprocess.run([*control, "on", str(os.getpid())], check=True, capture_output=True)
        await _drive(app, args.path, args.requests)
        subprocess.run([*control, "off", str(os.getpid())], check=True, capture_output=True)


async def main(args: argparse.Namespace) -> None:
    from artifacts.bundle import Bundle
    from service.app import create_app
    from service.settings import Settings
    from service.store import MemoryProfileStore

    bundle = Bundle.open(args.bundle)
    records = list(bundle.profile_records())
    known = next(r.user_id for r in records if r.profile.purchased)
    item = bundle.items.id(0)
    paths = {"health": "/health",
             "for-you (known)": f"/v1/users/{known}/recommendations?n=12",
             "for-you (unknown)": "/v1/users/nobody-at-all/recommendations?n=12",
             "homepage (known)": f"/v1/users/{known}/homepage"}
    if item is not None:
        paths["similar"] = f"/v1/items/{item}/similar?n=12"
    apps = {on: create_app(Settings(metrics=on), bundle=bundle,
                           store=MemoryProfileStore(records)) for on in (True, False)}
    async with apps[True].lifespan(), apps[False].lifespan():
        for app in apps.values():  # warm up: route caches, label children, first-call costs
            for path in paths.values():
                await _drive(app, path, 200)
        mode = "multiprocess (mmap files)" if args.multiprocess else "single process (memory)"
        print(f"metrics overhead, prometheus-client {mode}; {args.requests} requests x "
              f"{args.rounds} rounds per route, in-process ASGI calls")
        alone = await middleware_alone(args.requests * 10, args.rounds)
        print(f"middleware alone, around a trivial ASGI app: {alone * 1e6:.2f} us/request")
        print(f"{'route':<20} {'off us/req':>11} {'on us/req':>10} {'overhead us':>12}")
        for name, path in paths.items():
            off, on, diff = await paired(lambda p=path: _drive(apps[True], p, args.requests),
                                         lambda p=path: _drive(apps[False], p, args.requests),
                                         args.rounds)
            print(f"{name:<20} {off * 1e6:>11.1f} {on * 1e6:>10.1f} {diff * 1e6:>12.2f}")


if __name__ == "__main__":
    arguments = _parse()
    with tempfile.TemporaryDirectory(prefix="reco-metrics-bench-") as shared:
        if arguments.multiprocess:  # before anything imports prometheus_client
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        asyncio.run(callgrind(arguments) if arguments.callgrind else main(arguments))
