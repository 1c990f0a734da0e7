"""Frozen reference: artifacts/homepage.py as of ff0e446, before the homepage was vectorised.

tests/test_homepage_reference.py builds pages with this and with the served code and asserts
the answers are byte for byte the same. Do not "fix" this file: it is the yardstick.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator

import msgspec
import numpy as np

from artifacts import ranking
from artifacts.catalog import Catalog
from artifacts.homepage_rules import (SECTIONS, SEGMENTS, HomepageRules, Layout, choose_layout,
                                      rules_from_manifest)
from artifacts.profiles import BatchProfile, LiveState
from artifacts.ranking import RecommendedItem
from artifacts.sizing import SizeView, evidence, nb_scores

__all__ = ["ANONYMOUS", "OPTED_OUT", "PERSONAL", "SECTIONS", "SEGMENTS", "UNAVAILABLE",
           "UNKNOWN", "HomepageRules", "HomepageSection", "HomepageView", "Layout", "Page",
           "build", "choose_layout", "rules_from_manifest"]

#: Audiences of a page; only ``personal`` pages use the profile beyond excluding purchases.
PERSONAL, ANONYMOUS, UNKNOWN, OPTED_OUT, UNAVAILABLE = (
    "personal", "anonymous", "unknown_customer", "opted_out", "profile_unavailable")
#: section -> (source of the market's list, source of the customer's own candidates in it)
_LIST_SOURCES = {"new_arrivals": ("new_arrival", "new_for_you"),
                 "on_sale": ("on_sale", "on_sale_for_you")}
_ITEM_REASON = {"personal": "matches your taste", "also_bought": "goes with what you bought",
                "variant": "another version of something you bought",
                "personal_live": "based on your latest purchases",
                "popular": "popular right now", "buy_again": "you bought this before"}


class HomepageSection(msgspec.Struct, kw_only=True, omit_defaults=True):
    key: str
    title: str
    reason: str
    """Why the section is on this page."""
    items: list[RecommendedItem]
    anchor_item_id: str | None = None
    """``because_you_bought``: the purchase the section is built around."""


class Page(msgspec.Struct, kw_only=True):
    sections: list[HomepageSection]
    layout: str
    """Name of the layout used: a segment, ``default`` or ``non_personal``."""
    layout_reason: str
    segments: list[str]
    notes: list[str] = []
    incomplete: bool = False
    """A section of the layout could not be built because the bundle lacks its list."""


class HomepageView:
    """What the homepage reads from one bundle, built once per :class:`Catalog`."""

    def __init__(self, catalog: Catalog):
        bundle = catalog.bundle
        self.catalog = catalog
        self.rules, self.notes = rules_from_manifest(bundle.manifest)
        self.sensitive = np.asarray(bundle["item_sensitive"], dtype=np.uint8).tobytes()
        self._names = bundle["item_name"] if bundle.has("item_name") else None
        self._price, self._list_price = bundle["item_price"], bundle["item_list_price"]
        self.sizes = SizeView.from_bundle(bundle)
        end = bundle.manifest.data_end
        self.trained_until = (dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC).timestamp()
                              if end else 0.0)
        self.lists: dict[str, list[list[tuple[int, float]]] | None] = {
            "new_arrivals": _market_lists(bundle, "new"), "on_sale": _market_lists(bundle, "sale")}
        on_sale = {i for rows in self.lists["on_sale"] or [] for i, _ in rows}
        self._markdown = {i: self._percent_off(i) for i in on_sale}
        self._sets: dict[tuple[str, int], frozenset[int]] = {}

    def name(self, idx: int) -> str:
        name = str(self._names[idx]) if self._names is not None else ""
        return name or self.catalog.ids[idx]

    def markdown(self, idx: int) -> int:
        """Percent below list price (0 when unknown or not reduced)."""
        found = self._markdown.get(idx)
        return self._percent_off(idx) if found is None else found

    def _percent_off(self, idx: int) -> int:
        price, listed = float(self._price[idx]), float(self._list_price[idx])
        if not (price > 0 and listed > price):
            return 0
        return round(100 * (1 - price / listed))

    def market_list(self, key: str, row: int) -> list[tuple[int, float]]:
        lists = self.lists[key]
        return lists[row] if lists is not None else []

    def market_set(self, key: str, row: int) -> frozenset[int]:
        found = self._sets.get((key, row))
        if found is None:
            found = self._sets[(key, row)] = frozenset(i for i, _ in self.market_list(key, row))
        return found


def _market_lists(bundle, prefix: str) -> list[list[tuple[int, float]]] | None:
    if not bundle.has(f"{prefix}_idx"):
        return None
    idx, score = np.asarray(bundle[f"{prefix}_idx"]), np.asarray(bundle[f"{prefix}_score"])
    return [list(zip(idx[r][idx[r] >= 0].tolist(), score[r][idx[r] >= 0].tolist()))
            for r in range(idx.shape[0])]


#: item index, score, source, reason, personal (drawn from what the customer did: the
#: sensitive rule applies) or not (the market's own list, the same for everyone there)
Candidate = tuple[int, float, str, str | None, bool]


class _Builder:
    """State of one page while its sections are filled in display order."""

    def __init__(self, view: HomepageView, profile: BatchProfile | None, live: LiveState | None,
                 market: str | None, n: int, now: float, personal: bool, shown: set[str]):
        catalog = view.catalog
        self.view, self.catalog, self.n, self.market = view, catalog, n, market
        self.personal = personal
        self.profile = profile if personal else None
        self.live = live if personal else None
        self.row = catalog.market_row(market)
        self.available = catalog.available(self.row)
        index = catalog.items.index
        just_bought = [p.item_id for p in live.purchased] if live is not None else []
        self.blocked = ranking.not_again(catalog, profile)
        self.blocked.update(i for i in map(index, just_bought) if i is not None)
        self.seen: set[int] = set()
        self.shown = shown
        #: the profile's candidates as (item index, score, source), looked up once per page
        self.candidates = [] if self.profile is None else [
            (i, score, source) for i, score, source in zip(
                *self.profile.candidate_columns(catalog.version, index)) if i >= 0]
        self.consent = bool(profile is not None and profile.consent_sensitive is True)
        self.engaged = self._engaged_categories(now - view.rules.session_minutes * 60)

    def _engaged_categories(self, since: float) -> frozenset[int]:
        """Sensitive categories the customer touched themselves in the current session."""
        if self.live is None:
            return frozenset()
        index, cats = self.catalog.items.index, self.catalog.category
        sensitive = self.view.sensitive
        recent = (x for lst in (self.live.viewed, self.live.cart, self.live.purchased)
                  for x in lst if x.ts >= since)
        return frozenset(cats[i] for i in map(index, (x.item_id for x in recent))
                         if i is not None and sensitive[i])

    def allowed_personal(self, idx: int) -> bool:
        return not self.view.sensitive[idx] or self.consent or \
            self.catalog.category[idx] in self.engaged

    def fill(self, stream: Iterable[Candidate], *, never_sensitive: bool = False,
             reason_of: Callable[[int], str] | None = None) -> list[RecommendedItem]:
        """Take items from ``stream`` (best first) that pass every page rule, keeping category
        runs short: an item that would lengthen a run waits for the next place it fits, and is
        dropped if none comes. ``reason_of(index)`` gives the reasons of candidates that carry
        none, computed only for the items placed."""
        ids, cats, sensitive = self.catalog.ids, self.catalog.category, self.view.sensitive
        seen, blocked, available = self.seen, self.blocked, self.available
        max_run, n = self.view.rules.max_category_run, self.n
        placed: list[Candidate] = []
        pending: list[Candidate] = []  # waiting for a place that does not lengthen a run
        run_cat, run_len = -1, 0
        for cand in stream:
            idx = cand[0]
            if idx in seen or idx in blocked or not available[idx]:
                continue
            if sensitive[idx] and (never_sensitive
                                   or (cand[4] and not self.allowed_personal(idx))):
                continue
            seen.add(idx)  # reserved; released below if it never finds a place
            cat = cats[idx]
            if not pending and (cat != run_cat or run_len < max_run):
                run_len = run_len + 1 if cat == run_cat else 1
                run_cat = cat
                placed.append(cand)
            else:
                pending.append(cand)
                moved = True
                while moved and pending and len(placed) < n:
                    moved = False
                    for k, waiting in enumerate(pending):
                        cat = cats[waiting[0]]
                        if cat == run_cat and run_len >= max_run:
                            continue
                        run_len = run_len + 1 if cat == run_cat else 1
                        run_cat = cat
                        placed.append(waiting)
                        del pending[k]
                        moved = True
                        break
            if len(placed) >= n or len(pending) > 4 * n:  # full, or one category floods it
                break
        for waiting in pending:
            seen.discard(waiting[0])
        return [RecommendedItem(item_id=ids[idx], score=round(score, 5), source=source,
                                reason=reason if reason is not None or reason_of is None
                                else reason_of(idx))
                for idx, score, source, reason, _ in placed]

    # -- sections: each returns (items, title fill, reason, anchor) or None when not buildable --
    def for_you(self) -> Iterator[Candidate]:
        skip_again = "buy_again" in self.shown
        for idx, score, source in self.candidates:
            if not (skip_again and source == "buy_again"):
                yield idx, score, source, _ITEM_REASON.get(source), True

    def neighbours_of(self, anchor: int, name: str) -> Iterator[Candidate]:
        neighbours, scores, codes = self.catalog.neighbours(anchor)
        for idx, score, code in zip(neighbours, scores, codes):
            source = self.catalog.neighbour_source(code)
            yield idx, score, source, (f"bought together with {name}" if source == "also_bought"
                                       else f"similar to {name}"), True

    def recently_viewed(self) -> Iterator[Candidate]:
        index = self.catalog.items.index
        for k, seen in enumerate(self.live.viewed):
            idx = index(seen.item_id)
            if idx is not None:
                yield idx, round(1.0 / (1 + k), 5), "recently_viewed", "you viewed this", True

    def buy_again(self) -> Iterator[Candidate]:
        index, catalog = self.catalog.items.index, self.catalog
        for idx, score, source in self.candidates:
            if source == "buy_again":
                yield idx, score, "buy_again", "you bought this before", True
        for item_id in self.profile.purchased:
            idx = index(item_id)
            if idx is not None and catalog.repurchasable(idx):
                yield idx, 0.0, "buy_again", "you bought this before", True

    def trending(self) -> Iterator[Candidate]:
        source = ranking.popular_source(self.market)
        reason = f"trending in {self.market}" if self.market else "trending"
        for idx, score in self.catalog.popular(self.row):
            yield idx, score, source, reason, False
        if self.row != 0:
            for idx, score in self.catalog.popular(0):
                yield idx, score, ranking.POPULAR, "trending", False

    def market_list(self, key: str) -> Iterator[Candidate]:
        """The customer's own candidates that are in the market's list first, then the list
        itself; on a personal page the whole section is personalised (sensitive rule)."""
        market, mine = _LIST_SOURCES[key]
        if self.profile is not None:
            members = self.view.market_set(key, self.row)
            for idx, score, _ in self.candidates:
                if idx in members:
                    yield idx, score, mine, None, True
        personal = self.profile is not None  # reordered by taste: a personalised section
        for idx, score in self.view.market_list(key, self.row):
            yield idx, score, market, None, personal


def build(view: HomepageView, *, profile: BatchProfile | None, live: LiveState | None = None,
          market: str | None, n: int, audience: str, now: float,
          sections: Collection[str] | None = None,
          segments: Collection[str] | None = None) -> Page:
    """The homepage for one customer (``audience`` :data:`PERSONAL`) or a non-personal
    market homepage (any other audience: the profile only excludes what was bought).

    ``sections`` restricts the page to those keys (in layout order, then any the layout does
    not hold, in the order given); ``segments`` defaults to the profile's.
    """
    rules = view.rules
    personal = audience == PERSONAL and profile is not None
    segs = list(profile.segments if segments is None and profile is not None else segments or [])
    if personal:
        name, layout = choose_layout(rules, segs)
    else:
        name, layout = "non_personal", rules.non_personal
    keys = list(layout.sections)
    if sections is not None:
        keys = [k for k in keys if k in sections] + [k for k in sections if k not in keys]
    b = _Builder(view, profile, live, market, n, now, personal, set(keys))
    notes, out, incomplete = list(view.notes), [], False
    for key in keys:
        built = _section(b, key)
        if built is None:
            continue
        if built == "missing":
            incomplete = True
            notes.append(f"bundle {view.catalog.version} has no {key.replace('_', ' ')} list "
                         "(trained before homepages): section left out")
            continue
        items, reason, anchor, fill = built
        if not items:
            continue
        title = _in_market(layout.titles.get(key, SECTIONS[key]), market)
        out.append(HomepageSection(
            key=key, title=title.replace("{item}", fill), items=items,
            reason=_in_market(layout.reasons.get(key, reason), market), anchor_item_id=anchor))
    return Page(sections=out, layout=name, layout_reason=layout.reason, segments=segs,
                notes=notes, incomplete=incomplete)


def _in_market(text: str, market: str | None) -> str:
    """Fill ``{market}``; without a market, drop " in {market}" ("Trending in DE" /
    "Trending")."""
    if market is None:
        text = text.replace(" in {market}", "")
    return text.replace("{market}", market or "your market")


def _section(b: _Builder, key: str):
    """(items, reason, anchor id, title fill), ``None`` when the section does not apply to
    this page, or ``"missing"`` when the bundle lacks its list."""
    personal_only = key in ("recently_viewed", "for_you", "because_you_bought", "buy_again",
                            "back_in_size")
    if personal_only and not b.personal:
        return None
    if key == "for_you":
        return (b.fill(b.for_you()),
                "picked from your purchases and customers with similar taste", None, "")
    if key == "because_you_bought":
        return _because_you_bought(b)
    if key == "recently_viewed":
        if b.live is None or not b.live.viewed:
            return None
        return b.fill(b.recently_viewed()), "items you viewed recently", None, ""
    if key == "buy_again":
        return (b.fill(b.buy_again()),
                "your purchases that customers buy again and again", None, "")
    if key == "back_in_size":
        return _back_in_size(b)
    if key == "trending":
        return b.fill(b.trending()), "what sells best in {market} now", None, ""
    if b.view.lists[key] is None:
        return "missing"
    if key == "new_arrivals":
        days = b.view.rules.new_arrival_days
        reason = f"new in the last {days} days"
        items = b.fill(b.market_list(key), reason_of=lambda _: reason)
        return items, f"items launched in the last {days} days" + \
            (", your taste first" if b.profile is not None else ""), None, ""
    pct = round(b.view.rules.sale_min_markdown * 100)
    items = b.fill(b.market_list(key), reason_of=lambda i: f"{b.view.markdown(i)}% off")
    return items, f"reduced by at least {pct}% in {{market}}" + \
        (", your taste first" if b.profile is not None else ""), None, ""


def _because_you_bought(b: _Builder):
    """Neighbours of the most recent purchase that has any to show. Never built around a
    sensitive purchase, never showing a sensitive item: its title states the inference."""
    index, sensitive = b.catalog.items.index, b.view.sensitive
    tried = 0
    for item_id in b.profile.purchased:
        idx = index(item_id)
        if idx is None or sensitive[idx]:
            continue
        name = b.view.name(idx)
        items = b.fill(b.neighbours_of(idx, name), never_sensitive=True)
        if items:
            return items, f"you bought {name}", item_id, name
        tried += 1
        if tried >= 5:
            break
    return None


def _back_in_size(b: _Builder):
    """Items on offer in the customer's size: their own candidates, then new arrivals and
    what is trending in the market, each kept only when it offers the size the customer's
    evidence points to in its size system (the bundle's size model, :mod:`artifacts.sizing`:
    kept sizes, sizes found too small or large, live size signals since training). Built only
    when the bundle has a size model and the customer has size evidence; one-size items and
    items that declare no sizes are left out."""
    sizes, profile, live = b.view.sizes, b.profile, b.live
    if not sizes.available:
        return None
    since = b.view.trained_until
    signals = [x for x in live.sizes if x.ts > since] if live is not None else []
    usual: dict[int, int] = {}
    for s, system in enumerate(sizes.systems):
        if len(system.order) > 1:
            ev = evidence(sizes, s, profile.sizes, signals)
            if ev is not None:
                usual[s] = int(np.argmax(nb_scores(sizes, s, ev)))
    if not usual:
        return None
    item_system, offered = sizes.item_system, sizes.item_offered

    def stream() -> Iterator[Candidate]:
        mine = ((idx, score) for idx, score, _ in b.candidates)
        market = [*b.view.market_list("new_arrivals", b.row), *b.catalog.popular(b.row)]
        for source, pairs in (("size_for_you", mine), ("size_market", market)):
            for idx, score in pairs:
                if idx is None:
                    continue
                s = int(item_system[idx])
                pos = usual.get(s)
                if pos is not None and offered[idx, pos]:
                    label = sizes.systems[s].order[pos]
                    yield idx, score, source, f"in your size {label}", True

    return (b.fill(stream()), "items on offer in the sizes you keep", None, "")
