"""Application factory: ``create_app(settings, *, bundle=None, store=None)``.

One lifespan opens the profile store and loads the bundle; tests pass their own bundle and
store instead of patching anything.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from artifacts.bundle import Bundle, BundleError
from service.api.admin import AdminController
from service.api.health import HealthController
from service.api.homepage import HomepageController
from service.api.live import LiveController
from service.api.picks import PicksController
from service.api.recommendations import RecommendationController
from service.api.sizes import SizeController
from service.errors import EXCEPTION_HANDLERS
from service.metrics import (count_near_cache, instrument, metrics_endpoint,
                             set_bundle_version)
from service.picks import PicksConfig
from service.fast_routes import FastRoutes
from service.reload import BundleReloader, Serving
from service.responses import AnswerResponse
from service.settings import Settings
from service.store import MemoryProfileStore, ProfileStore, RedisProfileStore

log = logging.getLogger("service")


def _open_store(settings: Settings, bundle: Bundle) -> ProfileStore:
    if settings.redis_url:  # a single server, or a Redis Cluster for a redis+cluster:// URL
        redis_store = RedisProfileStore(settings.redis_url, prefix=settings.redis_prefix,
                                        timeout_s=settings.redis_timeout_ms / 1000,
                                        retry_after_s=settings.redis_retry_after_s,
                                        near_cache_keys=settings.near_cache_keys,
                                        near_cache_ttl_s=settings.near_cache_ttl_s)
        near = redis_store.near
        log.info("profile store: %s (prefix %r); near cache: %s", redis_store.name,
                 settings.redis_prefix, f"up to {near.capacity} values, {near.ttl_s:g} s"
                 if near is not None else "off")
        return redis_store
    store = MemoryProfileStore(bundle.profile_records(), prefix=settings.redis_prefix)
    log.warning("RECO_REDIS_URL is not set: using the embedded in-process profile store with "
                "%d profiles from bundle %s (one process only, nothing persists; demo use)",
                len(store), bundle.version)
    return store


def create_app(settings: Settings | None = None, *, bundle: Bundle | None = None,
               store: ProfileStore | None = None) -> Litestar:
    """Build the service. ``bundle`` and ``store`` default to what ``settings`` names.

    The app owns the store for its lifetime: it is closed when the app shuts down, whether it
    was passed in or opened here.
    """
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            loaded = bundle or Bundle.open(settings.bundle_dir, verify=settings.verify_bundle)
        except BundleError as exc:
            log.critical("not starting: bundle refused: %s", exc)
            raise
        profile_store = store if store is not None else _open_store(settings, loaded)
        if getattr(profile_store, "near", None) is not None:
            count_near_cache(profile_store.near)
        picks = PicksConfig.load(settings.picks_config)
        serving = Serving.build(loaded, profile_store, settings, picks)
        # the reloader installs the services on app.state and hot-swaps them for a new bundle
        app.state.reloader = reloader = BundleReloader(
            app.state, serving, profile_store, settings, picks,
            on_swap=lambda swapped: set_bundle_version(swapped.version))
        log.info("serving bundle %s (%s, %d items)", loaded.version, loaded.manifest.dataset,
                 len(loaded.items))
        set_bundle_version(loaded.version)
        # The catalogue's long-lived objects (vocabulary, lists) would otherwise be walked by
        # every full collection: 60-120 ms pauses under load. Freeze them out of the GC.
        gc.collect()
        gc.freeze()
        reloader.start(watch=bundle is None)  # a bundle passed in is the caller's to swap
        del loaded, serving  # held by the reloader alone, so a swap can free the old bundle
        try:
            yield
        finally:
            await reloader.stop()
            await profile_store.close()

    app = Litestar(
        route_handlers=[RecommendationController, HomepageController, LiveController,
                        PicksController, SizeController,
                        HealthController, AdminController,
                        *([metrics_endpoint] if settings.metrics else [])],
        response_class=AnswerResponse,  # hands degraded/source to the metrics middleware
        request_max_body_size=settings.max_body_kb * 1024,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Fashion recommendation and personalisation service", version="1.0.0",
            description="Recommendations, similar items and more for fashion e-commerce. "
                        "Every item carries its source; degraded answers say so.\n\n"
                        f"Request bodies are limited to {settings.max_body_kb * 1024} bytes "
                        f"({settings.max_body_kb} KiB, `RECO_MAX_BODY_KB`); a larger one is "
                        "refused with 413. Every parameter and body field states its own "
                        "limits (id length and pattern, `n`, items per batch). Every 4xx "
                        "answer is an error body whose `detail` says what was wrong.",
            use_handler_docstrings=True),
        logging_config=None,  # logging is configured once by the entry point (service.cli)
        debug=False,
    )
    app.asgi_handler = FastRoutes(app.asgi_handler, app)  # the hot page views' short path
    return instrument(app, access_log=settings.access_log) if settings.metrics else app
