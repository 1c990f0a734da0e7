"""Helpers of the fault and hot-swap tests: the app served in-process, a steady request load,
bundle copies and a throwaway ``redis-server``.

The app runs in the test's own event loop behind httpx's ASGI transport (Litestar's test
client would run it in a portal thread and serialise the requests), so the load is truly
concurrent with the swap or fault under test.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from litestar import Litestar

from artifacts.bundle import resolve


@asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and a client talking to it in this event loop."""
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


@dataclass
class Outcome:
    path: str
    phase: str
    """The load's phase when the request was sent."""
    status: int
    body: dict | None
    done: str = ""
    """The load's phase when the answer came back."""
    sent_seq: int = 0
    done_seq: int = 0
    """Order of sending and of answering among all requests of the load (one counter)."""


@dataclass
class Load:
    """``workers`` tasks sending the paths round-robin, one request at a time each, until
    stopped; every response is kept with the phase it was sent in."""

    client: httpx.AsyncClient
    paths: Sequence[str]
    workers: int = 8
    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _stop: bool = False
    _seq: itertools.count = field(default_factory=itertools.count)

    async def _worker(self, offset: int) -> None:
        for path in itertools.islice(itertools.cycle(self.paths), offset, None):
            if self._stop:
                return
            phase, sent = self.phase, next(self._seq)
            response = await self.client.get(path)
            try:
                body = response.json()
            except ValueError:
                body = None
            self.outcomes.append(Outcome(path, phase, response.status_code, body, self.phase,
                                         sent, next(self._seq)))
            # an answer that needed no I/O never suspended: let the other tasks run
            await asyncio.sleep(0)

    def start(self) -> Load:
        self._tasks = [asyncio.create_task(self._worker(k)) for k in range(self.workers)]
        return self

    async def stop(self) -> list[Outcome]:
        self._stop = True
        await asyncio.gather(*self._tasks)
        return self.outcomes

    def count(self, predicate: Callable[[Outcome], bool]) -> int:
        return sum(1 for o in self.outcomes if predicate(o))

    async def until(self, predicate: Callable[[Outcome], bool], *, at_least: int = 1,
                    bound_s: float = 60.0, what: str = "") -> None:
        """Wait until ``at_least`` responses satisfy ``predicate``; a generous bound only
        guards against hanging forever (it is not a timing assertion)."""
        deadline = time.monotonic() + bound_s
        while self.count(predicate) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what or 'responses'}: "
                                     f"{self.count(predicate)} of {at_least} after {bound_s} s")
            if any(t.done() for t in self._tasks):  # a worker crashed: surface its error
                await asyncio.gather(*self._tasks)
            await asyncio.sleep(0.02)


async def eventually(check: Callable[[], bool], *, bound_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + bound_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def copy_bundle(source_root: Path, dest_root: Path, name: str | None = None) -> str:
    """Copy the bundle ``source_root`` serves into ``dest_root`` (as ``name``, by default its
    own directory name, which is its version); returns the directory name."""
    src = resolve(source_root)
    name = name or src.name
    dest_root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest_root / name)
    return name


def train_other_bundle(root: Path) -> Path:
    """A second real bundle: the same catalogue ids as the session's ``demo_bundle_root``
    (conftest ``shop``, seed 7) but another shop's purchases (seed 8), so answers differ."""
    from training.config import TrainConfig
    from training.data.synthetic import generate_shop
    from training.pipeline import train

    shop = generate_shop(seed=8, n_customers=600, n_items=400, days=240)
    train(shop, TrainConfig(factors=16, iterations=5, candidates=40), root, progress=False)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A ``redis-server`` of our own on ``port`` (data in ``workdir``), to stop and restart."""

    def __init__(self, binary: str, port: int, workdir: Path):
        self.binary, self.port, self.workdir = binary, port, workdir
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not come up")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def snapshot(self) -> None:
        """Write the data to ``workdir`` so a restart finds it (as a production Redis would)."""
        client = redis.Redis.from_url(self.url)
        try:
            client.save()
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
