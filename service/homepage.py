"""Homepage requests, apart from HTTP: profile lookup, audience, market, degradation.

The page itself is :func:`artifacts.homepage.build`, shared with the offline evaluation. Here:
one read of everything held for the customer (``ProfileStore.get_user``: one MGET), the batch
profile merged with live state, the market (requested, else the customer's, else the default),
and who the page is for:

* ``personal``: a known customer (batch profile, or live purchases or views since training:
  those count as new customers) who did not opt out of personalisation;
* ``opted_out``: the profile says ``consent_personalisation`` is false: the market homepage,
  still without what they bought;
* ``unknown_customer`` / ``anonymous``: the market homepage;
* ``profile_unavailable``: the profile store did not answer: the market homepage, ``degraded``.

No FAISS search runs here: every section reads a precomputed list. A page view never fails
because a step could not run; the answer says what was left out (``degraded``, ``notes``).

A page is a function of the bundle, the customer's stored values, the query and - through the
session window only - the time (:attr:`artifacts.homepage.Page.stable_until`). So the built
answer is kept with the customer's values (:mod:`service.kept`) and answered again while they,
the bundle and the time still fit. An answer holds its sections already encoded
(``msgspec.Raw``: about 7 KiB of JSON instead of some 15 KiB of Python objects), so a kept page
costs little memory and is sent without encoding them again. The market homepage of anonymous
visitors is kept per bundle, market, ``n`` and sections; the sections of the market homepage
that unknown customers get are encoded once per bundle, market, ``n`` and sections, and nothing
is kept per unknown id.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from artifacts import homepage
from artifacts.catalog import Catalog
from artifacts.homepage import HomepageSection, HomepageView
from artifacts.profiles import BatchProfile, LiveState
from artifacts.ranking import popular_source
from service import kept
from service.errors import BadRequest
from service.merge import merged_profile
from service.recommender import Recommender

NOTES = {
    homepage.PERSONAL: None,
    homepage.ANONYMOUS: "anonymous visitor: market homepage",
    homepage.UNKNOWN: "unknown customer: market homepage",
    homepage.OPTED_OUT: "customer opted out of personalisation: market homepage",
    homepage.UNAVAILABLE: "profile store unreachable: market homepage, not personalised",
}


class Homepage(msgspec.Struct, kw_only=True, gc=False):
    """A homepage: sections in display order, each with its items.

    ``audience`` says who the page was built for (``personal``, ``anonymous``,
    ``unknown_customer``, ``opted_out``, ``profile_unavailable``); ``layout`` which rule ordered
    the sections and ``layout_reason`` why. ``degraded`` is true when the profile store did
    not answer or the bundle lacks a list the layout asks for (``notes`` say which).

    ``gc=False`` and tuples, as :class:`service.schemas.Recommendations`: kept per customer,
    never walked by the garbage collector.
    """

    sections: list[HomepageSection]
    """As the service answers them: already encoded (``msgspec.Raw`` of this list)."""
    source: str
    """``personal`` for a customer's own page; ``popular_market`` / ``popular`` for the market
    homepage (as in the other answers)."""
    audience: str
    personalised: bool
    layout: str
    layout_reason: str
    segments: tuple[str, ...]
    market: str | None
    degraded: bool
    bundle_version: str
    user_id: str | None = None
    notes: tuple[str, ...] = ()


_ENCODER = msgspec.json.Encoder()
#: Anonymous market pages and market sections kept per bundle: when full, the store is emptied
#: (a bound against query strings made up to fill memory). A customer's page whose sections take
#: more JSON than KEPT_MAX_BYTES (large ``n``) is built every time: a kept page costs the worker
#: at most that (one per customer: :mod:`service.kept`).
KEPT_ANONYMOUS, KEPT_MAX_BYTES = 1024, 16 * 1024
KIND = "homepage"


def parse_sections(text: str | None) -> tuple[str, ...] | None:
    """Section keys from ``a,b,c``; ``None`` (all) when not given; 400 for unknown ones."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in names if s not in homepage.SECTIONS]
    if unknown or not names:
        what = (f"unknown section(s) {', '.join(map(repr, unknown))}" if unknown
                else "no section named")
        message = f"{what}; known sections: {', '.join(homepage.SECTIONS)}"
        raise BadRequest(f"sections: {message}",
                         fields=[{"key": "sections", "source": "query", "message": message}])
    return names


class HomepageService:
    """Builds homepages from one recommender's catalogue (hot-swapped with it) and store."""

    def __init__(self, recommender: Recommender, *, clock: Callable[[], float] = time.time):
        self.recommender = recommender
        self.clock = clock  # epoch seconds: the session window of live events
        self._view: HomepageView | None = None
        self._anonymous: dict[tuple, Homepage] = {}  # (n, market, sections) -> answer
        self._market_sections: dict[tuple, msgspec.Raw] = {}  # (market, n, sections) -> JSON

    def view(self, catalog: Catalog) -> HomepageView:
        """The homepage structures of ``catalog``, rebuilt when the bundle was swapped."""
        view = self._view
        if view is None or view.catalog is not catalog:
            view = self._view = HomepageView(catalog)
            self._anonymous, self._market_sections = {}, {}
        return view

    async def for_user(self, user_id: str, *, n: int, market: str | None = None,
                       sections: str | None = None) -> Homepage:
        wanted = parse_sections(sections)
        catalog, trained_until = self.recommender.snapshot()
        if market is not None:
            self.recommender.resolve_market(catalog, market)  # 400 before touching the store
        raw = await self.recommender.read(user_id)
        variant = self._variant(n, market, wanted)
        answer = kept.recall(raw, KIND, catalog, variant, self.clock())
        if answer is not None:
            return answer
        record = self.recommender.store.decode_user(raw.values) if raw is not None else None
        profile, live, segments = None, None, None
        if record is not None:
            live = record.live
            profile = merged_profile(record.batch, live, trained_until=trained_until,
                                     catalog=catalog)
            if profile is None and live is not None and live.viewed:
                profile = BatchProfile(bundle_version=catalog.version, market=live.market)
            if profile is not None and record.batch is None:
                segments = ["new"]  # known only from what they did since training
        if record is None:
            audience = homepage.UNAVAILABLE
        elif profile is None:
            audience = homepage.UNKNOWN
        elif profile.consent_personalisation is False:
            audience = homepage.OPTED_OUT
        else:
            audience = homepage.PERSONAL
        answer, stable_until = self._page(catalog, audience, profile, live, market, n, wanted,
                                          segments, user_id=user_id)
        if len(answer.sections) <= KEPT_MAX_BYTES:
            kept.keep(raw, KIND, catalog, variant, answer, until=stable_until)
        else:
            kept.forget(raw, KIND)
        return answer

    def anonymous(self, *, n: int, market: str | None = None,
                  sections: str | None = None) -> Homepage:
        wanted = parse_sections(sections)
        catalog, _ = self.recommender.snapshot()
        self.view(catalog)  # first: a swapped bundle empties the kept pages
        variant = self._variant(n, market, wanted)
        kept = self._anonymous.get(variant)
        if kept is not None:
            return kept
        answer, _ = self._page(catalog, homepage.ANONYMOUS, None, None, market, n, wanted, None)
        if len(self._anonymous) >= KEPT_ANONYMOUS:
            self._anonymous.clear()
        self._anonymous[variant] = answer
        return answer

    def _variant(self, n: int, market: str | None, wanted: tuple[str, ...] | None) -> tuple:
        """All the query and settings a page depends on, as one flat tuple (``wanted`` is never
        empty): a tuple within a tuple stays tracked by the garbage collector one collection
        longer (:mod:`service.kept`)."""
        return (n, market, self.recommender.default_market, *(wanted or ()))

    def _page(self, catalog: Catalog, audience: str, profile: BatchProfile | None,
              live: LiveState | None, market: str | None, n: int,
              wanted: tuple[str, ...] | None,
              segments: list[str] | None, user_id: str | None = None
              ) -> tuple[Homepage, float]:
        """The answer, and until when the same inputs give the same page."""
        market_name = self.recommender.resolve_market(catalog, market, profile)
        page = homepage.build(self.view(catalog), profile=profile, live=live, market=market_name,
                              n=n, audience=audience, now=self.clock(), sections=wanted,
                              segments=segments)
        personal = audience == homepage.PERSONAL
        notes = [NOTES[audience]] if NOTES[audience] else []
        if page.shared:  # the same market page for every visitor: encoded once
            key = (market_name, n, wanted)
            sections = self._market_sections.get(key)
            if sections is None:
                if len(self._market_sections) >= KEPT_ANONYMOUS:
                    self._market_sections.clear()
                sections = self._market_sections[key] = msgspec.Raw(
                    _ENCODER.encode(page.sections))
        else:
            sections = msgspec.Raw(_ENCODER.encode(page.sections))
        return Homepage(
            sections=sections,  # type: ignore[arg-type]
            audience=audience, personalised=personal,
            source=homepage.PERSONAL if personal else popular_source(market_name),
            layout=page.layout, layout_reason=page.layout_reason,
            segments=tuple(page.segments) if personal else (), market=market_name,
            degraded=audience == homepage.UNAVAILABLE or page.incomplete,
            bundle_version=catalog.version, user_id=user_id, notes=(*notes, *page.notes)
        ), page.stable_until
