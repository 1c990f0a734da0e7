"""Hot swap of the bundle: everything built from one bundle, and the reloader that replaces it.

:class:`Serving` is the object graph a request is answered from - the recommender and the
homepage, size, event and picks services, each with the structures it derives from the bundle
(catalogue, homepage view, size view, fold-in index). It is built whole, off the event loop, and
installed on the app state in one step with no ``await`` in between, so a request (which reads
the state once, at its start) is answered entirely from one bundle; requests in flight keep the
objects they hold, and the old bundle's memory maps close when the last of them finishes.

:class:`BundleReloader` swaps in the bundle ``settings.bundle_dir`` resolves to (a bundles
root's ``current`` link, or a directory) when asked (``POST /admin/reload``, ``SIGHUP`` to a
worker process) and, every ``settings.bundle_poll_s`` seconds, when that target has changed. A
bundle that does not open and verify is refused with one log line naming it and the reason; the
previous bundle keeps serving and the watcher does not try the same target again (an explicit
reload does). Each server worker process runs its own reloader and watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from artifacts.bundle import Bundle, BundleError, resolve
from artifacts.catalog import Catalog
from service.homepage import HomepageService
from service.ingest import EventIngestor
from service.picks import PickEngine, PicksConfig
from service.recommender import Recommender
from service.settings import Settings
from service.sizes import SizeAdvisor
from service.store.base import ProfileStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """The services answering from one bundle; see the module docstring."""

    bundle: Bundle
    recommender: Recommender
    ingestor: EventIngestor
    size_advisor: SizeAdvisor
    pick_engine: PickEngine
    homepage: HomepageService

    @property
    def version(self) -> str:
        return self.bundle.version

    @classmethod
    def build(cls, bundle: Bundle, store: ProfileStore, settings: Settings,
              picks: PicksConfig) -> Serving:
        """Build every per-bundle structure now (CPU-bound: call it in a worker thread), so
        the first requests after a swap do not pay for it on the event loop."""
        recommender = Recommender(Catalog(bundle), store, default_market=settings.default_market)
        ingestor = EventIngestor(recommender, user_ttl_s=settings.live_ttl_days * 86_400,
                                 session_ttl_s=settings.session_ttl_hours * 3_600)
        ingestor.foldin()
        homepage = HomepageService(recommender)
        homepage.view(recommender.catalog)
        return cls(bundle=bundle, recommender=recommender, ingestor=ingestor,
                   size_advisor=SizeAdvisor(recommender),
                   pick_engine=PickEngine(recommender, picks), homepage=homepage)

    def install(self, state) -> None:
        """Point the app state at these services (handlers read them from the state)."""
        state.recommender = self.recommender
        state.ingestor = self.ingestor
        state.size_advisor = self.size_advisor
        state.pick_engine = self.pick_engine
        state.homepage = self.homepage


class ReloadResult(msgspec.Struct, kw_only=True):
    """What a reload did. ``outcome``: ``swapped`` (now serving ``bundle_version``),
    ``unchanged`` (the target is the bundle already served) or ``refused`` (``reason`` says
    why; ``bundle_version`` is still served)."""

    outcome: str
    bundle_version: str
    previous_version: str | None = None
    target: str | None = None
    reason: str | None = None
    pid: int = 0


class BundleReloader:
    """Swaps the app's :class:`Serving` for the one built from the current bundle target.

    One reload runs at a time; the bundle is opened, verified and built in a worker thread,
    and only the final assignment happens on the event loop.
    """

    def __init__(self, state, serving: Serving, store: ProfileStore, settings: Settings,
                 picks: PicksConfig, *, on_swap: Callable[[Serving], None] | None = None):
        self.state = state
        self.serving = serving
        self.store = store
        self.settings = settings
        self.picks = picks
        self.on_swap = on_swap
        """Called with the new services right after each swap (e.g. to report the version)."""
        self.source = Path(settings.bundle_dir)
        self._lock = asyncio.Lock()
        self._refused: dict[str, str] = {}
        self._watcher: asyncio.Task | None = None
        self._signalled: set[asyncio.Task] = set()
        self._signal_installed = False
        serving.install(state)

    def _target(self) -> Path:
        return resolve(self.source)

    def _build(self, target: Path) -> Serving:
        bundle = Bundle.open(target, verify=self.settings.verify_bundle)
        return Serving.build(bundle, self.store, self.settings, self.picks)

    def _result(self, outcome: str, **fields) -> ReloadResult:
        return ReloadResult(outcome=outcome, bundle_version=self.serving.version,
                            pid=os.getpid(), **fields)

    async def reload(self, *, explicit: bool = True) -> ReloadResult:
        """Swap to the bundle the source resolves to, if it differs from the one served.

        ``explicit`` (admin endpoint, signal) retries a target refused before; the watcher
        passes ``False`` so a refused target is logged once, not on every poll.
        """
        async with self._lock:
            served = self.serving
            try:
                target = await asyncio.to_thread(self._target)
            except BundleError as exc:
                return self._refuse(str(self.source), str(exc), explicit)
            key = str(target)
            if target == served.bundle.path:
                return self._result("unchanged", target=key)
            if not explicit and key in self._refused:
                return self._result("refused", target=key, reason=self._refused[key])
            started = time.perf_counter()
            try:
                serving = await asyncio.to_thread(self._build, target)
            except BundleError as exc:
                return self._refuse(key, str(exc), explicit)
            except Exception as exc:  # e.g. FAISS refusing an index file: still not served
                log.exception("bundle %s refused: unexpected error while loading it", key)
                return self._refuse(key, f"{type(exc).__name__}: {exc}", explicit, logged=True)
            serving.install(self.state)  # no await between building and this: one step
            self.serving = serving
            self._refused.clear()  # current moved on: a refused target that comes back is
            # tried (and, if still bad, logged) again
            gc.freeze()  # as at start-up: keep the new catalogue out of full collections
            if self.on_swap is not None:
                self.on_swap(serving)
            log.info("hot-swapped bundle %s -> %s (%s, %d items) in %.2f s", served.version,
                     serving.version, serving.bundle.manifest.dataset, len(serving.bundle.items),
                     time.perf_counter() - started)
            if self.store.name == "memory":
                log.warning("the embedded profile store keeps the profiles of the bundle it "
                            "started with; restart to serve %s's profiles", serving.version)
            return self._result("swapped", previous_version=served.version, target=key)

    def _refuse(self, key: str, reason: str, explicit: bool, *, logged: bool = False
                ) -> ReloadResult:
        if not logged and (explicit or self._refused.get(key) != reason):
            log.error("bundle %s refused: %s; still serving %s", key, reason,
                      self.serving.version)
        self._refused[key] = reason
        return self._result("refused", target=key, reason=reason)

    async def _watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reload(explicit=False)
            except Exception:  # never let the watcher die: the next poll tries again
                log.exception("bundle watcher: reload failed")

    def start(self, *, watch: bool = True) -> None:
        """Start the watcher (with ``watch`` and ``bundle_poll_s`` > 0) and, in the main
        thread, the ``SIGHUP`` handler; call from the running event loop."""
        if watch and self.settings.bundle_poll_s > 0:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(self.settings.bundle_poll_s), name="bundle-watcher")
            log.info("watching %s for a new bundle every %g s", self.source,
                     self.settings.bundle_poll_s)
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGHUP, self._on_signal)
                self._signal_installed = True

    def _on_signal(self) -> None:
        log.info("SIGHUP: reloading the bundle")
        task = asyncio.get_running_loop().create_task(self.reload())
        self._signalled.add(task)
        task.add_done_callback(self._signalled.discard)

    async def stop(self) -> None:
        if self._signal_installed:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal_installed = False
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
