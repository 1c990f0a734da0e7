"""Memory of kept answers: what a worker's heap holds per customer whose page view it keeps.

Answers ``--customers`` customers of a bundle through the service's ``HomepageService`` or
``Recommender`` (``--kind``) with a near cache on a real Redis (the bundle's profiles written
under a private prefix, deleted at the end), and reports the heap growth per customer (Python's
tracemalloc: the near cache's values and the kept answer together) and the answer's JSON size.
``--kind values`` only reads the customers' values: the near cache's share, to subtract;
``--kind both`` keeps both answers, as a worker serving both page views does. A first batch of
100 customers warms up the structures built once per bundle.

It also reports what the garbage collector makes of it: the objects it tracks per customer, and
how long a full collection takes with all of them held (the service freezes what it loaded at
start-up, ``gc.freeze()``, so this is what a full collection walks in a worker), the fastest of
five.

    .venv/bin/python benchmarks/kept_pages_memory.py --bundle benchmarks/out/bundles/current \
        --kind homepage
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec  # noqa: E402

from artifacts.bundle import Bundle  # noqa: E402
from artifacts.catalog import Catalog  # noqa: E402
from benchmarks.load import delete_prefix  # noqa: E402
from service.homepage import HomepageService  # noqa: E402
from service.recommender import Recommender  # noqa: E402
from service.store import RedisProfileStore  # noqa: E402
from training.redis_push import push_profiles  # noqa: E402

PREFIX = "kept-pages-memory"
WARM_UP = 100


async def measure(bundle: Bundle, redis_url: str, customers: int, n: int, kind: str) -> None:
    records = [r for _, r in zip(range(customers + WARM_UP), bundle.profile_records())]
    push_profiles(records, redis_url, prefix=PREFIX, progress=False)
    store = RedisProfileStore(redis_url, prefix=PREFIX, timeout_s=1.0,
                              near_cache_keys=3 * len(records))
    try:
        recommender = Recommender(Catalog(bundle), store)
        homepage = HomepageService(recommender)

        async def answer(user: str) -> bytes:
            if kind == "values":
                await store.read_user(user)
                return b""
            services = {"homepage": [homepage], "recommendations": [recommender],
                        "both": [homepage, recommender]}[kind]
            return b"".join([msgspec.json.encode(await service.for_user(user, n=n))
                             for service in services])

        users = [r.user_id for r in records]
        for user in users[:WARM_UP]:
            await answer(user)
        gc.collect()
        gc.freeze()  # as the service after start-up: the bundle and the warm-up are not walked
        tracked_before = len(gc.get_objects())
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        body = 0
        for user in users[WARM_UP:]:
            body += len(await answer(user))
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        del before, after  # the snapshots are not the worker's
        gc.collect()
        count = len(users) - WARM_UP
        tracked = len(gc.get_objects()) - tracked_before
        pauses = []
        for _ in range(5):
            start = time.perf_counter()
            gc.collect()
            pauses.append(time.perf_counter() - start)
        gc.unfreeze()
        print(f"{count:,} customers, {kind} (n={n}): {grown / count / 1024:.1f} KiB of heap "
              f"each, near-cache values included; answers {body / count / 1024:.1f} KiB of JSON "
              f"each; {tracked / count:.2f} objects tracked by the garbage collector each "
              f"({tracked:,}); a full collection {min(pauses) * 1000:.2f} ms")
    finally:
        await store.close()
        delete_prefix(redis_url, prefix=PREFIX)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/kept_pages_memory.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("benchmarks/out/bundles/current"))
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--customers", type=int, default=2_900, help="customers measured")
    p.add_argument("--n", type=int, default=12,
                   help="items per homepage section, or per recommendations answer")
    p.add_argument("--kind", choices=("homepage", "recommendations", "both", "values"),
                   default="homepage",
                   help="the answer kept (both: the two; values: none, only the values read)")
    args = p.parse_args(argv)
    asyncio.run(measure(Bundle.open(args.bundle), args.redis_url, args.customers, args.n,
                        args.kind))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
