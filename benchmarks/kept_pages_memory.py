"""Memory of kept answers: what a worker's heap holds per customer whose page view it keeps.

Answers ``--customers`` customers of a bundle through the service's ``HomepageService`` or
``Recommender`` (``--kind``) with a near cache on a real Redis (the bundle's profiles written
under a private prefix, deleted at the end), and reports the heap growth per customer (Python's
tracemalloc: the near cache's values and the kept answer together) and the answer's JSON size.
``--kind values`` only reads the customers' values: the near cache's share, to subtract. A
first batch of 100 customers warms up the structures built once per bundle.

    .venv/bin/python benchmarks/kept_pages_memory.py --bundle benchmarks/out/bundles/current \
        --kind homepage
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
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
            service = homepage if kind == "homepage" else recommender
            return msgspec.json.encode(await service.for_user(user, n=n))

        users = [r.user_id for r in records]
        for user in users[:WARM_UP]:
            await answer(user)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        body = 0
        for user in users[WARM_UP:]:
            body += len(await answer(user))
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        count = len(users) - WARM_UP
        print(f"{count:,} customers, {kind} (n={n}): {grown / count / 1024:.1f} KiB of heap "
              f"each, near-cache values included; answers {body / count / 1024:.1f} KiB of JSON "
              f"each")
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
    p.add_argument("--kind", choices=("homepage", "recommendations", "values"),
                   default="homepage", help="the answer kept (values: none, only the values read)")
    args = p.parse_args(argv)
    asyncio.run(measure(Bundle.open(args.bundle), args.redis_url, args.customers, args.n,
                        args.kind))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
