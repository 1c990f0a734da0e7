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

from artifacts.bundle import Bundle
from service.api.health import HealthController
from service.api.homepage import HomepageController
from service.api.live import LiveController
from service.api.picks import PicksController
from service.api.recommendations import RecommendationController
from service.api.sizes import SizeController
from artifacts.catalog import Catalog
from service.errors import EXCEPTION_HANDLERS
from service.ingest import EventIngestor
from service.picks import PickEngine, PicksConfig
from service.recommender import Recommender
from service.settings import Settings
from service.sizes import SizeAdvisor
from service.store import MemoryProfileStore, ProfileStore, RedisProfileStore

log = logging.getLogger("service")


def _open_store(settings: Settings, bundle: Bundle) -> ProfileStore:
    if settings.redis_url:
        log.info("profile store: redis (prefix %r)", settings.redis_prefix)
        return RedisProfileStore(settings.redis_url, prefix=settings.redis_prefix,
                                 timeout_s=settings.redis_timeout_ms / 1000,
                                 retry_after_s=settings.redis_retry_after_s)
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
        loaded = bundle or Bundle.open(settings.bundle_dir, verify=settings.verify_bundle)
        profile_store = store or _open_store(settings, loaded)
        recommender = Recommender(Catalog(loaded), profile_store,
                                  default_market=settings.default_market)
        app.state.recommender = recommender
        app.state.ingestor = EventIngestor(recommender,
                                           user_ttl_s=settings.live_ttl_days * 86_400,
                                           session_ttl_s=settings.session_ttl_hours * 3_600)
        app.state.size_advisor = SizeAdvisor(recommender)
        app.state.pick_engine = PickEngine(recommender, PicksConfig.load(settings.picks_config))
        log.info("serving bundle %s (%s, %d items)", loaded.version, loaded.manifest.dataset,
                 len(loaded.items))
        # The catalogue's long-lived objects (vocabulary, lists) would otherwise be walked by
        # every full collection: 60-120 ms pauses under load. Freeze them out of the GC.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await profile_store.close()

    return Litestar(
        route_handlers=[RecommendationController, HomepageController, LiveController,
                        PicksController, SizeController,
                        HealthController],
        request_max_body_size=settings.max_body_kb * 1024,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Fashion recommendation and personalisation service", version="1.0.0",
            description="Recommendations, similar items and more for fashion e-commerce. "
                        "Every item carries its source; degraded answers say so."),
        logging_config=None,  # logging is configured once by the entry point (service.cli)
        debug=False,
    )
