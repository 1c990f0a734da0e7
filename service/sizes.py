"""Preselected size requests, apart from HTTP: what evidence counts, degradation, the answer.

The decision is :func:`artifacts.sizing.choose_size`, shared with the offline evaluation. This
module only gathers its inputs with one store read per request:

- a customer (``get_user``, one MGET): the trainer's size evidence in the batch profile, plus
  the live size signals of their events - views and carts always (the trainer never saw them),
  purchases only when newer than the bundle's training data (older ones are in the profile);
- an anonymous session (``get_session``): every size signal of the session; a session linked
  to a customer by a login also reads that customer's profile (a second read).

When the store is unreachable the answer is built from what is available (nothing personal:
no size) and says ``degraded``; never a 5xx. An unknown item is a 404; an item with one size
or none is a 200 with no size and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from artifacts.catalog import Catalog
from artifacts.profiles import LiveState, SizePreference, SizeSignal
from artifacts.sizing import SizeView, choose_size
from service.errors import NotFound
from service.recommender import Recommender
from service.store.base import StoreUnavailable

STORE_DOWN = "profile store unreachable: answered without the shopper's history"


class SizeResponse(msgspec.Struct, kw_only=True):
    """The size to preselect on a product page, or ``size: null`` with the reason why not.

    ``basis`` is the reason as a code (``usual``, ``runs_small``, ``runs_large``,
    ``browsing``; without a size: ``uncertain``, ``no_history``, ``not_offered``,
    ``one_size``, ``no_sizes``, ``no_model``). ``source`` names the evidence used:
    ``profile`` (trainer), ``live`` (events since), ``profile+live`` or ``none``.
    """

    item_id: str
    size: str | None
    confidence: float
    reason: str
    basis: str
    size_system: str | None = None
    sizes_on_offer: list[str] = []
    source: str
    degraded: bool = False
    bundle_version: str
    user_id: str | None = None
    session_id: str | None = None
    notes: list[str] = []


OPTED_OUT = "customer opted out of personalisation: no size from their history"


def _opted_out(record) -> bool:
    return record.batch is not None and record.batch.consent_personalisation is False


def _live_signals(live: LiveState | None, trained_until: float) -> list[SizeSignal]:
    """Live size signals that are not already in the trainer's profile, without purchases
    the customer returned afterwards (a returned size is not a kept one)."""
    if live is None:
        return []
    returned = {x.item_id: x.ts for x in live.returned}
    return [s for s in live.sizes if (s.kind in ("view", "cart") or s.ts > trained_until)
            and not (s.kind == "purchase" and returned.get(s.item_id, -1.0) >= s.ts)]


class SizeAdvisor:
    """Answers size requests from the recommender's catalogue (hot-swapped with it) and store."""

    def __init__(self, recommender: Recommender):
        self.recommender = recommender
        self._view: tuple[Catalog, SizeView] | None = None
        self.view(recommender.catalog)

    def view(self, catalog: Catalog) -> SizeView:
        """The size view of ``catalog``'s bundle, built once per catalogue."""
        cached = self._view
        if cached is None or cached[0] is not catalog:
            cached = (catalog, SizeView.from_bundle(catalog.bundle))
            self._view = cached
        return cached[1]

    def _answer(self, catalog: Catalog, view: SizeView, item: int, item_id: str,
                profile: Sequence[SizePreference], live: Sequence[SizeSignal], *,
                degraded: bool, notes: list[str] | None = None, **who) -> SizeResponse:
        answer = choose_size(view, item, profile, live)
        system = view.system_of(item)
        used_profile = any(p.system == system for p in profile)
        used_live = any(view.items.index(s.item_id) is not None
                        and view.system_of(view.items.index(s.item_id)) == system for s in live)
        source = ("profile+live" if used_profile and used_live else "profile" if used_profile
                  else "live" if used_live else "none")
        return SizeResponse(
            item_id=item_id, size=answer.size, confidence=answer.confidence,
            reason=answer.reason, basis=answer.basis, size_system=system,
            sizes_on_offer=view.offered(item), source=source, degraded=degraded,
            bundle_version=catalog.version,
            notes=[STORE_DOWN] if degraded else list(notes or []), **who)

    def _item(self, catalog: Catalog, item_id: str) -> int:
        item = catalog.items.index(item_id)
        if item is None:
            raise NotFound(f"item {item_id!r} is not in the catalogue of bundle {catalog.version}")
        return item

    async def for_user(self, user_id: str, item_id: str) -> SizeResponse:
        catalog, trained_until = self.recommender.snapshot()
        view = self.view(catalog)
        item = self._item(catalog, item_id)
        try:
            record = await self.recommender.store.get_user(user_id)
        except StoreUnavailable:
            return self._answer(catalog, view, item, item_id, (), (), degraded=True,
                                user_id=user_id)
        if _opted_out(record):
            return self._answer(catalog, view, item, item_id, (), (), degraded=False,
                                notes=[OPTED_OUT], user_id=user_id)
        profile = record.batch.sizes if record.batch is not None else []
        return self._answer(catalog, view, item, item_id, profile,
                            _live_signals(record.live, trained_until), degraded=False,
                            user_id=user_id)

    async def for_session(self, session_id: str, item_id: str) -> SizeResponse:
        catalog, trained_until = self.recommender.snapshot()
        view = self.view(catalog)
        item = self._item(catalog, item_id)
        store = self.recommender.store
        try:
            session = await store.get_session(session_id)
            profile: list[SizePreference] = []
            live = list(session.sizes) if session is not None else []
            if session is not None and session.user_id:
                record = await store.get_user(session.user_id)
                if _opted_out(record):  # the customer's, and so this session's, history
                    return self._answer(catalog, view, item, item_id, (), (), degraded=False,
                                        notes=[OPTED_OUT], session_id=session_id)
                profile = record.batch.sizes if record.batch is not None else []
                live += _live_signals(record.live, trained_until)
                # a login carried the session's signals over to the customer: count them once
                live = list({(x.item_id, x.size, x.kind, x.ts): x for x in live}.values())
        except StoreUnavailable:
            return self._answer(catalog, view, item, item_id, (), (), degraded=True,
                                session_id=session_id)
        return self._answer(catalog, view, item, item_id, profile, live, degraded=False,
                            session_id=session_id)
