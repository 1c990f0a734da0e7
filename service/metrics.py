"""Prometheus metrics: what they are, how requests are measured, and ``GET /metrics``.

Metrics (prometheus-client; names are the contract with dashboards and alerts):

- ``reco_http_request_duration_seconds{route,method}``: histogram of the time from the request
  reaching the app to the end of the response. ``route`` is the route *template*
  (``/v1/users/{user_id}/recommendations``), never the path: paths hold customer ids, which are
  personal data and unbounded. Requests that match no route count as ``route="unmatched"``,
  ``method="*"``.
- ``reco_http_error_responses_total{route,method,status}``: responses with status >= 400 (the
  histogram's ``_count`` is every request, so the happy path pays for one metric, not two).
- ``reco_degraded_answers_total{route}``: answers marked ``degraded`` (a step could not run,
  e.g. the profile store did not answer).
- ``reco_fallback_answers_total{route,source}``: answers whose ``source`` is a non-personal
  fallback (:data:`FALLBACK_SOURCES`: popular lists, or ``none`` for a size without evidence).
- ``reco_bundle_info{version}``: 1 for the bundle a live worker serves, 0 for one it served
  before (:func:`set_bundle_version`; with several workers, the max over live workers).
- ``reco_redis_errors_total{op}``: failed Redis calls, ``op`` = ``read`` or ``write``
  (:data:`REDIS_ERRORS_TOTAL`, counted by the profile store).
- ``reco_profile_cache_reads_total{result}``: page-view reads of a customer's or session's
  values answered by the worker's near cache (``hit``) or sent to Redis (``miss``); counted
  by :class:`service.store.near_cache.NearCache` (:func:`count_near_cache`).

Like loggers, the metric objects are process-wide (prometheus-client keeps them per process,
and in multiprocess mode in one file per process). Under several server workers
``python -m service serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts; each
worker then writes its values to memory-mapped files there and ``/metrics`` on any worker
reports the sum (and max, for the bundle gauge) over all of them.

Measuring costs about 13k instructions (3-4 us of CPU) per request
(``benchmarks/metrics_overhead.py``):
:class:`MetricsMiddleware` is one raw ASGI layer around the app (:func:`instrument`) that adds
each request to plain per-route numbers, moved into prometheus-client about once a second
(:class:`_Route`); answers reach it through :class:`service.responses.AnswerResponse`, which
puts the answer object into the ASGI scope instead of anyone parsing the body.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import time
import weakref
from bisect import bisect_left

from litestar import Litestar, Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               multiprocess)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder

from artifacts.ranking import POPULAR, POPULAR_CATEGORY, POPULAR_MARKET
from service.logs import ACCESS_LOGGER, CURRENT_REQUEST
from service.responses import ANSWER_SCOPE_KEY

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Upper bounds in seconds: fine around the 5 ms page-view target, coarse beyond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5)
#: Sources that mean "not from what we know about this shopper or item".
FALLBACK_SOURCES = frozenset({POPULAR, POPULAR_MARKET, POPULAR_CATEGORY, "none"})
#: Where the middleware leaves the status in the scope (the answer: ``ANSWER_SCOPE_KEY``).
STATUS_SCOPE_KEY = "reco.status"
#: The route label of requests that matched no route (404, 405).
UNMATCHED = "unmatched"
#: How often each worker moves its requests' observations into the shared metrics.
FLUSH_INTERVAL_S = 1.0

REQUEST_DURATION = Histogram(
    "reco_http_request_duration_seconds",
    "Time from routing to the end of the response, by route template and method.",
    ["route", "method"], buckets=LATENCY_BUCKETS)
ERROR_RESPONSES = Counter(
    "reco_http_error_responses_total", "Responses with a status of 400 or more.",
    ["route", "method", "status"])
DEGRADED_ANSWERS = Counter(
    "reco_degraded_answers_total",
    "Answers marked degraded: a step could not run and a lesser source answered.", ["route"])
FALLBACK_ANSWERS = Counter(
    "reco_fallback_answers_total",
    "Answers whose main source is a non-personal fallback (popular lists; no size evidence).",
    ["route", "source"])
BUNDLE_INFO = Gauge(
    "reco_bundle_info", "1 for the bundle version a live worker serves, else 0.", ["version"],
    multiprocess_mode="livemax")
REDIS_ERRORS_TOTAL = Counter(
    "reco_redis_errors_total", "Redis calls that failed (errors, timeouts, refused connections).",
    ["op"])
PROFILE_CACHE_READS = Counter(
    "reco_profile_cache_reads_total",
    "Page-view reads answered by the worker's near cache (hit) or sent to Redis (miss).",
    ["result"])

log = logging.getLogger(__name__)
_bundle_versions: set[str] = set()  # versions this process has reported, to zero the old ones


def set_bundle_version(version: str) -> None:
    """Report ``version`` as the bundle this process serves (call at load and after a swap)."""
    for old in _bundle_versions - {version}:
        BUNDLE_INFO.labels(old).set(0)
    _bundle_versions.add(version)
    BUNDLE_INFO.labels(version).set(1)


class _Route:
    """What one (route template, method) observed since the last flush, in plain numbers.

    A request adds to these (a bisect and two additions); :func:`flush` moves them into the
    prometheus-client metrics about once a second. Observing each request directly took
    several microseconds more (a lock per value and, with several workers, a write to a
    memory-mapped file for the bucket and the sum), and prometheus-client has no batch
    observe: the histogram flush adds to the child's bucket and sum values, exactly what its
    ``observe`` does for a single value (tests/test_prometheus.py checks the counts).
    """

    __slots__ = ("route", "method", "latency", "counts", "total", "degraded",
                 "fallback", "errors")

    def __init__(self, route: str, method: str):
        self.route, self.method = route, method
        self.latency = REQUEST_DURATION.labels(route, method)
        self.counts = [0] * len(_BOUNDS)
        self.total = 0.0
        self.degraded = 0
        self.fallback: dict[str, int] = {}
        self.errors: dict[int, int] = {}

    def flush(self) -> None:
        counts, total = self.counts, self.total
        if total or any(counts):
            self.counts, self.total = [0] * len(_BOUNDS), 0.0
            for value, n in zip(self.latency._buckets, counts):
                if n:
                    value.inc(n)
            self.latency._sum.inc(total)
        if self.degraded:
            DEGRADED_ANSWERS.labels(self.route).inc(self.degraded)
            self.degraded = 0
        if self.fallback:
            fallback, self.fallback = self.fallback, {}
            for source, n in fallback.items():
                FALLBACK_ANSWERS.labels(self.route, source).inc(n)
        if self.errors:
            errors, self.errors = self.errors, {}
            for status, n in errors.items():
                ERROR_RESPONSES.labels(self.route, self.method, str(status)).inc(n)


_BOUNDS = (*LATENCY_BUCKETS, float("inf"))
_routes: list[_Route] = []  # every route accumulator of this process, for flush()
_flushing: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}


_near_caches: weakref.WeakSet = weakref.WeakSet()  # whose hit and miss counts flush() moves


def count_near_cache(cache) -> None:
    """Report ``cache``'s hits and misses (a :class:`~service.store.near_cache.NearCache`,
    which counts in plain numbers) in ``reco_profile_cache_reads_total`` from now on."""
    _near_caches.add(cache)


def flush() -> None:
    """Move what the requests of this process observed into the metrics (for exposition)."""
    for route in _routes:
        route.flush()
    for cache in _near_caches:
        hits, misses = cache.take_counts()
        if hits:
            PROFILE_CACHE_READS.labels("hit").inc(hits)
        if misses:
            PROFILE_CACHE_READS.labels("miss").inc(misses)


def _flush_every_second(loop: asyncio.AbstractEventLoop) -> None:
    flush()
    _flushing[loop] = loop.call_later(FLUSH_INTERVAL_S, _flush_every_second, loop)


def _start_flushing() -> None:
    """Flush about once a second on the running loop (once per loop), so that another worker's
    ``/metrics`` sees this worker's requests, an idle worker's too."""
    loop = asyncio.get_running_loop()
    for old in [other for other in _flushing if other.is_closed()]:
        del _flushing[old]
    if loop not in _flushing:
        _flushing[loop] = loop.call_later(FLUSH_INTERVAL_S, _flush_every_second, loop)


class MetricsMiddleware:
    """Raw ASGI middleware around the whole app (see :func:`instrument`): latency, error
    statuses, degraded and fallback answers, the request for log records, and
    (``access_log``) one log line per request naming the route template, never the path.

    It sits outside Litestar's routing, so it sees every request, 404s for unknown paths
    included (route ``unmatched``), and reads the route template Litestar's router writes into
    the scope.
    """

    def __init__(self, app: ASGIApp, *, access_log: bool = False):
        self.app = app
        self.access_log = logging.getLogger(ACCESS_LOGGER) if access_log else None
        self._routes: dict[str, dict[str, _Route]] = {}

    def _bind(self, route: str, method: str) -> _Route:
        bound = _Route(route, method)
        self._routes.setdefault(route, {})[method] = bound
        _routes.append(bound)
        _start_flushing()
        return bound

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def send_noting_status(message: Message):  # plain function: no coroutine per message
            if message["type"] == "http.response.start":
                scope[STATUS_SCOPE_KEY] = message["status"]  # type: ignore[literal-required]
            return send(message)

        token = CURRENT_REQUEST.set(scope)  # type: ignore[arg-type]
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = time.perf_counter() - start
            CURRENT_REQUEST.reset(token)
            route = scope.get("path_template")
            method = scope["method"]  # type: ignore[typeddict-item]
            if route is None:  # no route matched: one label, whatever the path or method
                route, method = UNMATCHED, "*"
            try:
                bound = self._routes[route][method]
            except KeyError:
                bound = self._bind(route, method)
            bound.counts[bisect_left(_BOUNDS, elapsed)] += 1
            bound.total += elapsed
            status = scope.get(STATUS_SCOPE_KEY, 500)  # type: ignore[call-overload]
            if status >= 400:
                bound.errors[status] = bound.errors.get(status, 0) + 1
            answer = scope.get(ANSWER_SCOPE_KEY)  # type: ignore[call-overload]
            if answer is not None:
                if answer.degraded:
                    bound.degraded += 1
                source = answer.source
                if source in FALLBACK_SOURCES:
                    bound.fallback[source] = bound.fallback.get(source, 0) + 1
            if self.access_log is not None:
                self.access_log.info(
                    "%s %s %d %.2f ms", method, route, status, elapsed * 1000,
                    extra={"route": route, "method": method, "status": status,
                           "duration_ms": round(elapsed * 1000, 3)})


def instrument(app: Litestar, *, access_log: bool = False) -> Litestar:
    """Put :class:`MetricsMiddleware` around ``app``'s whole request handling.

    It wraps ``app.asgi_handler`` (Litestar's exception handling around its router: the place
    Litestar's own OpenTelemetry middleware takes) rather than being a route middleware:
    Litestar puts an extra exception-handling layer under every route that has middleware,
    which cost as much again as this middleware (callgrind, benchmarks/metrics_overhead.py).
    """
    app.asgi_handler = MetricsMiddleware(app.asgi_handler, access_log=access_log)
    return app


def mark_dead_workers(path: str) -> list[int]:
    """Drop the live-gauge files of worker processes that no longer run (so a dead worker's
    bundle version stops counting); its counters and histograms stay in the totals."""
    dead = []
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = int(os.path.basename(name).rsplit("_", 1)[1].removesuffix(".db"))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
            dead.append(pid)
        except PermissionError:  # alive, someone else's
            pass
    return dead


def exposition(accept: str | None = None) -> tuple[bytes, str]:
    """(every metric, content type) in the format ``accept`` asks for (Prometheus text by
    default, OpenMetrics on request): this process's metrics, or with
    ``PROMETHEUS_MULTIPROC_DIR`` set, those of every worker that wrote there."""
    encoder, content_type = choose_encoder(accept or "")
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return encoder(REGISTRY), content_type
    mark_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return encoder(registry), content_type


@get("/metrics", summary="Prometheus metrics", tags=["operations"],
     media_type=CONTENT_TYPE_PLAIN_0_0_4, sync_to_thread=False)
def metrics_endpoint(request: Request) -> Response[bytes]:
    """Request latency per route, error responses, degraded and fallback answers, the bundle
    version served and Redis errors, in the Prometheus text format (OpenMetrics when the
    ``Accept`` header asks for it), summed over every worker."""
    flush()
    recommender = getattr(request.app.state, "recommender", None)
    if recommender is not None:  # the scraped worker's own bundle, whatever swapped it in
        set_bundle_version(recommender.catalog.version)
    body, content_type = exposition(request.headers.get("accept"))
    if content_type.startswith("text/"):  # Litestar adds the charset to text types itself
        content_type = content_type.replace("; charset=utf-8", "")
    return Response(body, media_type=content_type)
