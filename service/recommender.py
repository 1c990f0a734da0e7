"""Recommendation requests, apart from HTTP: profile lookup, market choice, degradation.

The selection itself is :mod:`artifacts.ranking`, shared with the offline evaluation. Fallback
chain for "for you": the customer's precomputed candidates (batch profile) -> popular in their
market -> popular overall. A step that cannot run (store down, customer unknown) moves to the
next and says so in ``source`` / ``degraded`` / ``notes``; a page view never fails because of it.
"""

from __future__ import annotations

from artifacts import ranking
from artifacts.catalog import Catalog
from artifacts.profiles import BatchProfile
from service.errors import BadRequest, NotFound
from service.schemas import Recommendations
from service.store.base import ProfileStore, StoreUnavailable

STORE_DOWN = "profile store unreachable: non-personal answer"
UNKNOWN_CUSTOMER = "unknown customer: popular items"


class Recommender:
    """Answers recommendation requests from a catalogue (bundle) and a profile store.

    ``catalog`` may be replaced at any time by a newer one (hot swap); each request reads it
    once at its start, so a request is answered entirely from one bundle.
    """

    def __init__(self, catalog: Catalog, store: ProfileStore, *, default_market: str | None = None):
        self.catalog = catalog
        self.store = store
        self.default_market = default_market

    def _market(self, catalog: Catalog, requested: str | None,
                profile: BatchProfile | None) -> str | None:
        if requested is not None:
            if not catalog.knows_market(requested):
                known = ", ".join(catalog.markets) or "none (this catalogue has no markets)"
                raise BadRequest(f"unknown market {requested!r}; known markets: {known}")
            return requested
        if profile is not None and profile.market and catalog.knows_market(profile.market):
            return profile.market
        if self.default_market and catalog.knows_market(self.default_market):
            return self.default_market
        return None

    async def _profile(self, user_id: str) -> tuple[BatchProfile | None, bool]:
        """(profile or None, degraded)."""
        try:
            return await self.store.get_batch(user_id), False
        except StoreUnavailable:
            return None, True

    async def for_user(self, user_id: str, *, n: int, market: str | None = None) -> Recommendations:
        catalog = self.catalog
        profile, degraded = await self._profile(user_id)
        market_name = self._market(catalog, market, profile)
        picked = ranking.for_user(catalog, profile, n=n, market=market_name)
        if profile is None:
            picked.notes.insert(0, STORE_DOWN if degraded else UNKNOWN_CUSTOMER)
        return Recommendations(items=picked.items, source=picked.source, degraded=degraded,
                               market=market_name, bundle_version=catalog.version,
                               user_id=user_id, notes=picked.notes)

    async def similar(self, item_id: str, *, n: int, market: str | None = None,
                      user_id: str | None = None) -> Recommendations:
        catalog = self.catalog
        idx = catalog.items.index(item_id)
        if idx is None:
            raise NotFound(f"item {item_id!r} is not in the catalogue of bundle {catalog.version}")
        profile, degraded = (None, False)
        if user_id is not None:
            profile, degraded = await self._profile(user_id)
        market_name = self._market(catalog, market, profile)
        picked = ranking.similar(catalog, idx, n=n, market=market_name,
                                 exclude=ranking.purchased_indices(catalog, profile))
        if degraded:
            picked.notes.insert(0, "profile store unreachable: not personalised")
        return Recommendations(items=picked.items, source=picked.source, degraded=degraded,
                               market=market_name, bundle_version=catalog.version,
                               item_id=item_id, user_id=user_id, notes=picked.notes)
