"""Bookkeeping of a training run: its named stages (timed, logged, watchable), the garbage
collector paused while it builds millions of objects, and stopping: SIGINT and SIGTERM turned
into ``KeyboardInterrupt`` (:func:`install_stop_handlers`), held back where native code calls
into Python (:func:`shielded`) or once the bundle is published (:func:`no_more_stops`), and
what a stopped run reports (:class:`Stopped`; :func:`artifacts.bundle.discard` removes its
bundle).
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

log = logging.getLogger(__name__)


class Stages:
    """Logs and times each named stage of a run.

    ``watch``, when given, is called with each stage's name and must return a context manager
    that is entered when the stage starts and left when it ends (also on an exception): the
    hook a benchmark uses to measure peak memory per stage (benchmarks/train_scale.py).
    """

    def __init__(self, watch: Callable[[str], AbstractContextManager] | None = None) -> None:
        self.timings: dict[str, float] = {}
        self._watch = watch
        self.current: str | None = None
        """The stage running now; after an exception, the stage it left."""
        self.last: str | None = None
        """The stage started last."""

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.current = self.last = name  # before the log line: a stop may come as it is read
        log.info("%s ...", name)
        with self._watch(name) if self._watch is not None else nullcontext():
            started = time.perf_counter()
            yield
            self.timings[name] = round(time.perf_counter() - started, 3)
        self.current = None
        log.info("%s done in %.2f s", name, self.timings[name])

    def where(self) -> str:
        """Where a run stands, for a message: the running stage, else after the last one."""
        if self.current is not None:
            return self.current
        return f"the step after {self.last}" if self.last is not None else "its start"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: a run creates millions of small acyclic
    objects (profiles, their lists), and every collection would walk all that are alive -
    at a million customers more time than the work itself. Reference counting still frees
    everything; the collector's previous state is restored afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Stopped(KeyboardInterrupt):
    """A run stopped by ``KeyboardInterrupt`` (Ctrl-C, or a signal turned into one), raised
    once the run has removed what it wrote; ``str()`` says where it stopped and what is left."""

    def __init__(self, version: str, stage: str, removed: Path | None, current: bool,
                 profiles_pushed: int) -> None:
        self.version = version
        self.stage = stage
        """The stage that was running (or the last one that had finished)."""
        self.removed = removed
        """The bundle directory removed (None: none had been committed, or it was current)."""
        self.current = current
        """The bundle had already been made current, so it stays."""
        self.profiles_pushed = profiles_pushed
        """Profiles of this run already written to Redis; they stay (see :func:`train`)."""
        if current:
            what = f"bundle {version} was already current and stays"
        elif removed is not None:
            what = f"removed bundle {version} ({removed}); 'current' unchanged"
        else:
            what = "no bundle left behind; 'current' unchanged"
        if profiles_pushed:
            what += (f"; {profiles_pushed:,} of its profiles were already written to Redis and "
                     f"stay (the service serves them; push-profiles rewrites those of current)")
        super().__init__(f"during {stage}: {what}")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
_held = 0  # > 0: a stop is recorded, not raised


def install_stop_handlers() -> Callable[[], None]:
    """Make SIGINT and SIGTERM raise ``KeyboardInterrupt`` in the main thread, so a stopped run
    unwinds and removes what it wrote; a second signal ends the process at once. Inside
    :func:`shielded` or after :func:`no_more_stops` the signal is only recorded
    (:func:`stop_signal`). Returns a function that puts the previous handlers back."""
    global _held
    _received.clear()
    _held = 0

    def stop(signum, frame):
        _received.append(signum)
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        if not _held:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]


def stop_signal() -> int | None:
    """The signal that asked this process to stop, if one did."""
    return _received[0] if _received else None


@contextmanager
def shielded() -> Iterator[None]:
    """Hold a stop back while native code runs that calls into Python: numba's compiler and
    its cache call back through ctypes, where a ``KeyboardInterrupt`` is dropped ("Exception
    ignored on calling ctypes callback": the run would go on and publish) or crashes the
    process. The stop is raised when the section ends."""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
    if _received and not _held:
        raise KeyboardInterrupt


def no_more_stops() -> None:
    """From here on the run completes: the bundle is being made current, and a stop would
    only leave it current while the exit status says the run failed. A later signal is
    recorded (:func:`stop_signal`), not raised."""
    global _held
    _held += 1

