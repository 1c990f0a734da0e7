"""The baseline of the load benchmark: a bare Litestar JSON endpoint, no bundle, no Redis.

``GET /bare`` returns a msgspec Struct shaped and sized like a recommendation answer (12 items
with id, score and source, plus the envelope fields), built per request from constants. Served
by the same server with the same options and worker count as ``python -m service serve``, it
measures what the framework, the server and the JSON encoding cost on this machine, so the
service's figures can be read as a ratio that survives a noisy or different machine.

``GET /bare/users/{user_id}`` is the floor of a personal page view: the same constant answer
after the one thing every personal answer must do, reading the customer's profile through the
service's own store (:class:`service.store.RedisProfileStore`: the coalesced, pipelined MGET of
their keys, decoded). What any personal endpoint costs above it is the service's own work.
It needs a Redis: :func:`create_app`'s ``redis_url`` and ``redis_prefix``, by default
``BARE_REDIS_URL`` and ``BARE_REDIS_PREFIX`` (default ``reco``) from the environment, which is
how a server's workers get them; without a URL the route answers 503.

Run by ``benchmarks/load.py``; by hand::

    .venv/bin/python -m benchmarks.bare_app --server granian --workers 1 --port 8100
"""

from __future__ import annotations

import argparse
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import msgspec
from litestar import Litestar, Request, get, post
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, PathParameter

from service.settings import Settings
from service.store import RedisProfileStore
from service.store.base import StoreUnavailable

REDIS_URL_ENV, REDIS_PREFIX_ENV = "BARE_REDIS_URL", "BARE_REDIS_PREFIX"

# H&M-like ids (10 digits) and a score per item: the same bytes per item as a real answer.
_ITEMS = tuple((f"{706016001 + 7919 * i:010d}", round(0.9 - 0.05 * i, 5)) for i in range(12))


class BareItem(msgspec.Struct, kw_only=True):
    item_id: str
    score: float
    source: str
    reason: str | None = None


class BareAnswer(msgspec.Struct, kw_only=True):
    items: list[BareItem]
    source: str
    degraded: bool = False
    market: str | None = None
    bundle_version: str
    user_id: str | None = None
    item_id: str | None = None
    notes: list[str] = []


class BareReady(msgspec.Struct):
    ready: bool


class BareEvent(msgspec.Struct, kw_only=True):
    event_id: str
    type: str
    item_id: str
    user_id: str | None = None
    session_id: str | None = None
    size: str | None = None


class BareEvents(msgspec.Struct):
    events: list[BareEvent]


class BareAccepted(msgspec.Struct):
    accepted: int


def _answer() -> BareAnswer:
    return BareAnswer(items=[BareItem(item_id=i, score=s, source="also_bought") for i, s in _ITEMS],
                      source="also_bought", bundle_version="20250101T000000Z-bare00",
                      item_id="0706016001")


@get("/bare")
async def bare() -> BareAnswer:
    return _answer()


@get("/bare/users/{user_id:str}")
async def bare_profile(request: Request, user_id: Annotated[str, PathParameter()]) -> BareAnswer:
    """``/bare`` after reading the customer's profile as the service does (see the module doc)."""
    store: RedisProfileStore | None = request.app.state.store
    if store is None:
        raise HTTPException(status_code=503, detail=f"{REDIS_URL_ENV} is not set")
    try:
        await store.get_user(user_id)
    except StoreUnavailable:
        pass  # as the service: the answer comes anyway
    return _answer()


@post("/bare/events", status_code=200)
async def bare_events(data: JSONBody[BareEvents]) -> BareAccepted:
    """The baseline of ``POST /v1/events``: decode the same body, store nothing."""
    return BareAccepted(accepted=len(data.events))


@get("/ready")
async def ready() -> BareReady:
    return BareReady(ready=True)


def _profile_store(url: str | None, prefix: str):
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        """The store as the service opens it (its default read timeout), and the collector
        frozen after start-up as the service does."""
        app.state.store = (RedisProfileStore(url, prefix=prefix,
                                             timeout_s=Settings().redis_timeout_ms / 1000)
                           if url else None)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if app.state.store is not None:
                await app.state.store.close()
    return lifespan


def create_app(redis_url: str | None = None, redis_prefix: str | None = None) -> Litestar:
    """The baseline app (an app factory, as the service's ``service.asgi:app_from_env``); the
    profile floor's Redis defaults to ``BARE_REDIS_URL`` and ``BARE_REDIS_PREFIX``."""
    url = redis_url if redis_url is not None else os.environ.get(REDIS_URL_ENV)
    prefix = redis_prefix if redis_prefix is not None else os.environ.get(REDIS_PREFIX_ENV,
                                                                          "reco")
    return Litestar(route_handlers=[bare, bare_profile, bare_events, ready],
                    lifespan=[_profile_store(url, prefix)], openapi_config=None, debug=False)


def serve(server: str, host: str, port: int, workers: int) -> None:
    """Serve :func:`create_app` with the options ``python -m service serve`` uses."""
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian("benchmarks.bare_app:create_app", factory=True, interface=Interfaces.ASGI,
                address=host, port=port, workers=workers, backlog=2048, log_access=False).serve()
    else:
        import uvicorn

        uvicorn.run("benchmarks.bare_app:create_app", factory=True, host=host, port=port,
                    workers=workers, access_log=False, log_level="info")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian",
                        help="ASGI server (default: granian)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8100, help="port (default: 8100)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    args = parser.parse_args(argv)
    serve(args.server, args.host, args.port, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
