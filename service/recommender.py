"""Recommendation logic, apart from HTTP: profile lookup, filters, fallbacks, explanations.

Fallback chain for "for you": the customer's precomputed candidates (batch profile) ->
popular in their market -> popular overall. Any step that cannot run (store down, customer
unknown) moves to the next and says so in ``source`` / ``degraded`` / ``notes``; a page view
never fails because of it.
"""

from __future__ import annotations

from service.catalog import Catalog
from service.errors import BadRequest, NotFound
from service.schemas import RecommendedItem, Recommendations
from service.store.base import ProfileStore, StoreUnavailable
from artifacts.profiles import BatchProfile


class Recommender:
    """Answers recommendation requests from a catalogue (bundle) and a profile store.

    ``catalog`` may be replaced at any time by a newer one (hot swap); each request reads it
    once at its start, so a request is answered entirely from one bundle.
    """

    def __init__(self, catalog: Catalog, store: ProfileStore, *, default_market: str | None = None):
        self.catalog = catalog
        self.store = store
        self.default_market = default_market

    # -- helpers ----------------------------------------------------------------------------
    def _market(self, catalog: Catalog, requested: str | None, profile: BatchProfile | None) -> str | None:
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

    @staticmethod
    def _fill_popular(catalog: Catalog, row: int, n: int, out: list[RecommendedItem],
                      seen: set[int], source: str) -> None:
        available = catalog.available(row)
        ids = catalog.ids
        for idx, score in catalog.popular(row):
            if len(out) >= n:
                return
            if idx in seen or not available[idx]:
                continue
            seen.add(idx)
            out.append(RecommendedItem(item_id=ids[idx], score=round(score, 5), source=source))

    # -- for you ----------------------------------------------------------------------------
    async def for_user(self, user_id: str, *, n: int, market: str | None = None) -> Recommendations:
        catalog = self.catalog
        profile, degraded = await self._profile(user_id)
        market_name = self._market(catalog, market, profile)
        row = catalog.market_row(market_name)
        available = catalog.available(row)
        index = catalog.items.index
        out: list[RecommendedItem] = []
        seen: set[int] = set()
        notes: list[str] = []
        if profile is not None:
            for item_id in profile.purchased:
                idx = index(item_id)
                if idx is not None:
                    seen.add(idx)
            for item_id, score, source in zip(profile.candidates, profile.scores, profile.sources):
                if len(out) >= n:
                    break
                idx = index(item_id)
                if idx is None or idx in seen or not available[idx]:
                    continue
                seen.add(idx)
                out.append(RecommendedItem(item_id=item_id, score=score, source=source))
            source = "personal"
            if len(out) < n:
                notes.append("topped up with popular items")
        elif degraded:
            source = "popular_market" if market_name else "popular"
            notes.append("profile store unreachable: non-personal answer")
        else:
            source = "popular_market" if market_name else "popular"
            notes.append("unknown customer: popular items")
        pop_source = "popular_market" if market_name else "popular"
        self._fill_popular(catalog, row, n, out, seen, pop_source)
        if len(out) < n and row != 0:
            self._fill_popular(catalog, 0, n, out, seen, "popular")
        return Recommendations(items=out, source=source, degraded=degraded, market=market_name,
                               bundle_version=catalog.version, user_id=user_id, notes=notes)

    # -- similar items ----------------------------------------------------------------------
    async def similar(self, item_id: str, *, n: int, market: str | None = None,
                      user_id: str | None = None) -> Recommendations:
        catalog = self.catalog
        idx = catalog.items.index(item_id)
        if idx is None:
            raise NotFound(f"item {item_id!r} is not in the catalogue of bundle {catalog.version}")
        profile, degraded = (None, False)
        if user_id is not None:
            profile, degraded = await self._profile(user_id)
        market_name = self._market(catalog, market, profile if market is None and user_id else None)
        row = catalog.market_row(market_name)
        available = catalog.available(row)
        seen = {idx}
        notes: list[str] = []
        if profile is not None:
            index = catalog.items.index
            seen.update(i for i in map(index, profile.purchased) if i is not None)
        if degraded:
            notes.append("profile store unreachable: not personalised")
        out: list[RecommendedItem] = []
        ids = catalog.ids
        neighbours, scores, sources = catalog.neighbours(idx)
        for nidx, score, code in zip(neighbours, scores, sources):
            if len(out) >= n:
                break
            if nidx in seen or not available[nidx]:
                continue
            seen.add(nidx)
            out.append(RecommendedItem(item_id=ids[nidx], score=round(score, 5),
                                       source=catalog.neighbour_source(code)))
        source = out[0].source if out else "popular_category"
        if len(out) < n:
            notes.append("topped up with popular items of the same category"
                         if out else "no co-purchase data for this item: popular in its category")
            self._fill_category(catalog, row, catalog.category[idx], n, out, seen)
        if len(out) < n:
            self._fill_popular(catalog, row, n, out, seen,
                               "popular_market" if market_name else "popular")
        return Recommendations(items=out, source=source, degraded=degraded, market=market_name,
                               bundle_version=catalog.version, item_id=item_id,
                               user_id=user_id, notes=notes)

    @staticmethod
    def _fill_category(catalog: Catalog, row: int, category: int, n: int,
                       out: list[RecommendedItem], seen: set[int]) -> None:
        available = catalog.available(row)
        cat = catalog.category
        ids = catalog.ids
        for pidx, score in catalog.popular(row):
            if len(out) >= n:
                return
            if pidx in seen or not available[pidx] or cat[pidx] != category:
                continue
            seen.add(pidx)
            out.append(RecommendedItem(item_id=ids[pidx], score=round(score, 5),
                                       source="popular_category"))
