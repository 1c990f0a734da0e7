"""File-to-file batch picks (``python -m service picks``): any number of customers, bounded
memory, one Redis round trip and one FAISS batch per chunk, output written aside then renamed.

Chunks are spread over worker processes, forked after the parent has loaded and verified the
bundle, so they share its catalogue copy-on-write (each opens its own event loop and Redis
connection; the parent runs no FAISS or OpenMP work before forking). The parent reads the users
file and writes the workers' lines in input order, so the output does not depend on the number
of workers.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
from tqdm import tqdm

from artifacts.bundle import Bundle
from artifacts.catalog import Catalog
from artifacts.ids import is_valid_id
from service.picks import Pick, PickEngine, PicksConfig
from service.recommender import Recommender
from service.settings import Settings
from service.store import MemoryProfileStore, RedisProfileStore

log = logging.getLogger(__name__)
INVALID = "invalid customer id"


@dataclass
class PickStats:
    users: int = 0
    picked: int = 0
    capped: int = 0
    invalid: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class PickJob:
    """Everything a worker needs to know, picklable by the standard library."""

    settings: Settings
    n: int
    market: str | None
    campaign: str
    record: bool
    now: float


class _ChunkPicker:
    """One process's engine: catalogue, store, event loop; turns chunks into NDJSON bytes."""

    def __init__(self, job: PickJob, catalog: Catalog):
        settings = job.settings
        bundle = catalog.bundle
        self.loop = asyncio.new_event_loop()
        if settings.redis_url:
            self.store = RedisProfileStore(settings.redis_url, prefix=settings.redis_prefix,
                                           timeout_s=max(settings.redis_timeout_ms / 1000, 5.0))
        else:
            self.store = MemoryProfileStore(bundle.profile_records(), prefix=settings.redis_prefix)
        recommender = Recommender(catalog, self.store, default_market=settings.default_market)
        if job.market is not None:
            recommender.resolve_market(recommender.catalog, job.market, None)  # BadRequest if unknown
        self.engine = PickEngine(recommender, PicksConfig.load(settings.picks_config))
        self.job = job
        self.encoder = msgspec.json.Encoder()

    def run(self, users: list[str]) -> tuple[bytes, tuple[int, int, int, int]]:
        job = self.job
        valid = [u for u in users if is_valid_id(u)]
        picked = iter(self.loop.run_until_complete(self.engine.pick(
            valid, n=job.n, market=job.market, campaign=job.campaign, record=job.record,
            now=job.now))) if valid else iter(())
        buf = bytearray()
        picked_n = capped = invalid = 0
        for user in users:
            if is_valid_id(user):
                pick = next(picked)
            else:
                pick = Pick(user_id=user[:200], items=[], source="none", reason=INVALID)
                invalid += 1
            picked_n += bool(pick.items)
            capped += pick.capped
            self.encoder.encode_into(pick, buf, len(buf))
            buf += b"\n"
        return bytes(buf), (len(users), picked_n, capped, invalid)

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


_worker: _ChunkPicker | None = None
_inherited: Catalog | None = None  # set by the parent just before forking the workers


def _init_worker(job: PickJob) -> None:
    global _worker  # one engine per worker process, built once on the inherited catalogue
    assert _inherited is not None
    _worker = _ChunkPicker(job, _inherited)


def _run_in_worker(users: list[str]) -> tuple[bytes, tuple[int, int, int, int]]:
    assert _worker is not None
    return _worker.run(users)


def _chunks(path: Path, size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    with path.open(encoding="utf-8-sig") as fh:  # a byte-order mark is not part of an id
        for line in fh:
            user = line.strip()
            if not user or user.startswith("#"):
                continue
            chunk.append(user)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _count(path: Path) -> int:
    """Customers in the users file, counted as :func:`_chunks` reads them. A line that is not
    UTF-8 stops the run here, before anything is picked or recorded."""
    count = 0
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            try:
                text = line.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not UTF-8 text ({exc.reason})"
                                 ) from None
            count += bool(text) and not text.startswith("#")
    return count


def run_picks(settings: Settings, *, users_path: Path, out_path: Path, n: int,
              market: str | None, campaign: str, record: bool, chunk: int = 1000,
              workers: int = 1, progress: bool = True) -> PickStats:
    """Pick for every customer in ``users_path`` into ``out_path`` (NDJSON, input order)."""
    if not 1 <= n <= 50:
        raise ValueError("--n must be between 1 and 50")
    if not 1 <= chunk <= 100_000 or not 1 <= workers <= 64:
        raise ValueError("--chunk must be 1..100000 and --workers 1..64")
    if not is_valid_id(campaign) or (market is not None and not is_valid_id(market)):
        raise ValueError("--campaign and --market must be valid ids (letters, digits, ._:@-)")
    if not users_path.is_file():
        raise ValueError(f"no users file at {users_path}")
    if not settings.redis_url:
        log.warning("RECO_REDIS_URL is not set: picks from the bundle's batch profiles only "
                    "(no live events, and --record keeps nothing)")
    global _inherited
    job = PickJob(settings, n, market, campaign, record, time.time())
    catalog = Catalog(Bundle.open(settings.bundle_dir, verify=settings.verify_bundle))
    if market is not None and not catalog.knows_market(market):
        raise ValueError(f"unknown market {market!r}; known: {', '.join(catalog.markets)}")
    stats = PickStats()
    started = time.perf_counter()
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    bar = tqdm(total=_count(users_path), unit="customer", desc="picks", disable=not progress)

    def write(out, result: tuple[bytes, tuple[int, int, int, int]]) -> None:
        data, (users, picked, capped, invalid) = result
        out.write(data)
        stats.users += users
        stats.picked += picked
        stats.capped += capped
        stats.invalid += invalid
        bar.update(users)

    try:
        with tmp.open("wb") as out:
            if workers == 1:
                local = _ChunkPicker(job, catalog)
                try:
                    for users in _chunks(users_path, chunk):
                        write(out, local.run(users))
                finally:
                    local.close()
            else:
                _inherited = catalog
                ctx = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(job,)) as pool:
                    in_flight: deque[Future] = deque()
                    for users in _chunks(users_path, chunk):
                        in_flight.append(pool.submit(_run_in_worker, users))
                        if len(in_flight) >= 3 * workers:
                            write(out, in_flight.popleft().result())
                    while in_flight:
                        write(out, in_flight.popleft().result())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, out_path)
    finally:
        _inherited = None
        bar.close()
        tmp.unlink(missing_ok=True)
    stats.seconds = time.perf_counter() - started
    return stats
