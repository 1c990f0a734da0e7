"""Recommendation requests, apart from HTTP: profile lookup, market choice, degradation.

The selection itself is :mod:`artifacts.ranking`, shared with the offline evaluation. Fallback
chain for "for you": the customer's precomputed candidates (batch profile) -> popular in their
market -> popular overall. A step that cannot run (store down, customer unknown) moves to the
next and says so in ``source`` / ``degraded`` / ``notes``; a page view never fails because of it.
"""

from __future__ import annotations

import datetime as dt

from artifacts import ranking
from artifacts.catalog import Catalog
from artifacts.profiles import BatchProfile
from service import kept
from service.errors import BadRequest, NotFound
from service.merge import merged_profile
from service.schemas import RecommendedItem, Recommendations
from service.store.base import ProfileStore, RawUser, StoreUnavailable

STORE_DOWN = "profile store unreachable: non-personal answer"
UNKNOWN_CUSTOMER = "unknown customer: popular items"
OPTED_OUT = "customer opted out of personalisation: popular items"
KIND = "recommendations"


class Recommender:
    """Answers recommendation requests from a catalogue (bundle) and a profile store.

    ``catalog`` may be replaced at any time by a newer one (hot swap); each request reads it
    once at its start, so a request is answered entirely from one bundle.
    """

    def __init__(self, catalog: Catalog, store: ProfileStore, *, default_market: str | None = None):
        self.store = store
        self.default_market = default_market
        self.catalog = catalog

    @property
    def catalog(self) -> Catalog:
        return self._state[0]

    @catalog.setter
    def catalog(self, catalog: Catalog) -> None:
        """Swap the catalogue and what is derived from it in one assignment (hot swap)."""
        end = catalog.bundle.manifest.data_end
        trained_until = dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC).timestamp() \
            if end else 0.0
        self._state = (catalog, trained_until)
        self._market_lists: tuple[Catalog, dict] = (catalog, {})

    def snapshot(self) -> tuple[Catalog, float]:
        """(catalogue, end of its training data as epoch seconds), read once per request."""
        return self._state

    def resolve_market(self, catalog: Catalog, requested: str | None,
                       profile: BatchProfile | None = None) -> str | None:
        """The market to answer for: the requested one (400 if the catalogue does not know it),
        else the customer's, else the configured default, else none."""
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

    async def read(self, user_id: str) -> RawUser | None:
        """The customer's stored values as read, with their memo; ``None`` when the store did
        not answer (the answer is then degraded, never an error)."""
        try:
            return await self.store.read_user(user_id)
        except StoreUnavailable:
            return None

    def _merged(self, raw: RawUser | None, catalog: Catalog, trained_until: float
                ) -> tuple[BatchProfile | None, list[str]]:
        """(batch profile merged with live state, or None; items bought since training) from
        a customer's values as read (``None``: the store did not answer)."""
        if raw is None:
            return None, []
        record = self.store.decode_user(raw.values)
        profile = merged_profile(record.batch, record.live, trained_until=trained_until,
                                 catalog=catalog)
        just_bought = [p.item_id for p in record.live.purchased] if record.live else []
        return profile, just_bought

    async def for_user(self, user_id: str, *, n: int, market: str | None = None) -> Recommendations:
        """The customer's "for you" answer. It is a function of the bundle, the customer's
        stored values and the query only, so it is kept in their memo (:mod:`service.kept`) and
        answered again until one of those changes."""
        catalog, trained_until = self.snapshot()
        if market is not None:
            self.resolve_market(catalog, market)  # 400 before touching the store
        raw = await self.read(user_id)
        variant = (n, market, self.default_market)  # all the query and settings it depends on
        answer = kept.recall(raw, KIND, catalog, variant)
        if answer is not None:
            return answer
        profile, just_bought = self._merged(raw, catalog, trained_until)
        market_name = self.resolve_market(catalog, market, profile)
        if profile is None:  # unknown, or the store did not answer: the market's list
            items, source, notes = self._market_list(catalog, market_name, n)
            notes = (UNKNOWN_CUSTOMER if raw is not None else STORE_DOWN, *notes)
        else:
            # bought earlier: back only as "buy again" of a repurchasable item; bought since
            # training (live events): never; the customer's consent (see ranking.for_you)
            picked = ranking.for_you(catalog, profile, n=n, market=market_name,
                                     exclude=just_bought)
            items, source, notes = tuple(picked.items), picked.source, tuple(picked.notes)
            if profile.consent_personalisation is False:
                notes = (OPTED_OUT, *notes)
        answer = Recommendations(items=items, source=source, degraded=raw is None,
                                 market=market_name, bundle_version=catalog.version,
                                 user_id=user_id, notes=notes)
        kept.keep(raw, KIND, catalog, variant, answer)
        return answer

    def _market_list(self, catalog: Catalog, market: str | None, n: int
                     ) -> tuple[tuple[RecommendedItem, ...], str, tuple[str, ...]]:
        """The "for you" items, source and notes of a customer the store knows nothing of (or
        did not answer for): the market's, the same for everyone, so built once per bundle,
        market and ``n`` and shared by the answers."""
        owner, lists = self._market_lists
        found = lists.get((market, n)) if owner is catalog else None
        if found is None:
            picked = ranking.for_you(catalog, None, n=n, market=market)
            found = tuple(picked.items), picked.source, tuple(picked.notes)
            if owner is catalog:  # else the bundle was swapped during this request
                lists[(market, n)] = found
        return found

    async def similar(self, item_id: str, *, n: int, market: str | None = None,
                      user_id: str | None = None) -> Recommendations:
        catalog, trained_until = self.snapshot()
        idx = catalog.items.index(item_id)
        if idx is None:
            raise NotFound(f"item {item_id!r} is not in the catalogue of bundle {catalog.version}")
        if market is not None:
            self.resolve_market(catalog, market)  # 400 before touching the store
        profile, degraded = (None, False)
        if user_id is not None:
            raw = await self.read(user_id)
            profile, _ = self._merged(raw, catalog, trained_until)
            degraded = raw is None
        market_name = self.resolve_market(catalog, market, profile)
        picked = ranking.similar(catalog, idx, n=n, market=market_name,
                                 exclude=ranking.purchased_indices(catalog, profile))
        if degraded:
            picked.notes.insert(0, "profile store unreachable: not personalised")
        return Recommendations(items=tuple(picked.items), source=picked.source,
                               degraded=degraded, market=market_name,
                               bundle_version=catalog.version, item_id=item_id, user_id=user_id,
                               notes=tuple(picked.notes))
