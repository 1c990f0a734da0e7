"""The homepage: ordered sections of items, assembled from precomputed lists by rules in the bundle.

Shared by the service (``service/homepage.py`` adds the profile store, market choice and
degradation) and the offline evaluation (``training/evaluation/homepage.py``), so what is
measured is what is served. Pure: no I/O, no model evaluation, no FAISS search - every section
reads a list the trainer precomputed (the profile's candidates, neighbour lists, popular, new and
on-sale lists per market) or the customer's live events.

Sections (:data:`SECTIONS`): ``recently_viewed`` (live views), ``for_you`` (the profile's
candidates), ``because_you_bought`` (neighbours of a recent purchase), ``trending`` (popular in
the market), ``new_arrivals`` and ``on_sale`` (the market's lists, the customer's own candidates
among them first), ``buy_again`` (repurchasable items the customer bought), ``back_in_size``
(items on offer in the customer's size: only with the bundle's size model and size evidence
for the customer; see :func:`_back_in_size`).

Which sections appear, in which order, is a :class:`Layout` chosen by the customer's segments
(:class:`HomepageRules` in :mod:`artifacts.homepage_rules`, written by the trainer into the
manifest; defaults for older bundles).
Rules every page keeps:

* no item twice on a page; at most ``max_category_run`` items of one category in a row;
* never an item not sold in the market or out of stock, nor one the customer bought unless the
  bundle marks it repurchasable, nor one bought since training (live purchases);
* sensitive items (``item_sensitive``) appear in personal sections only when the customer
  consented (``consent_sensitive``) or engaged with that category in the current session
  (live events of the last ``session_minutes``); never in ``because_you_bought``, whose anchor
  is never a sensitive item either. ``trending`` (what sells in the market, the same list
  for everyone there) reveals nothing about the customer and may show them; so may the
  non-personal market homepage. ``new_arrivals`` and ``on_sale`` put the customer's taste first
  on a personal page, so there they count as personal.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec
import numpy as np

from artifacts.homepage_fill import PageState
from artifacts.homepage_rules import (SECTIONS, SEGMENTS, HomepageRules, Layout, choose_layout,
                                      rules_from_manifest)
from artifacts.homepage_view import HomepageView, Part
from artifacts.profiles import BatchProfile, LiveState
from artifacts.ranking import RecommendedItem
from artifacts.sizing import evidence, nb_scores

__all__ = ["ANONYMOUS", "OPTED_OUT", "PERSONAL", "SECTIONS", "SEGMENTS", "UNAVAILABLE",
           "UNKNOWN", "HomepageRules", "HomepageSection", "HomepageView", "Layout", "Page",
           "build", "choose_layout", "rules_from_manifest"]

#: Audiences of a page; only ``personal`` pages use the profile beyond excluding purchases.
PERSONAL, ANONYMOUS, UNKNOWN, OPTED_OUT, UNAVAILABLE = (
    "personal", "anonymous", "unknown_customer", "opted_out", "profile_unavailable")
#: Sections built only for a customer's own page.
_PERSONAL_ONLY = frozenset({"recently_viewed", "for_you", "because_you_bought", "buy_again",
                            "back_in_size"})
#: Non-personal pages kept per view (by market, n and sections) before the store is cleared.
_MARKET_PAGES = 1024


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
    stable_until: float = float("inf")
    """Until when (epoch seconds) the same inputs give the same page: the time an event of
    the session leaves the session window (see :class:`~artifacts.homepage_fill.PageState`)."""
    shared: bool = False
    """The market page every visitor of the market gets for this ``n`` and these sections (no
    profile, no purchase since training): its sections are the same objects each time."""




def build(view: HomepageView, *, profile: BatchProfile | None, live: LiveState | None = None,
          market: str | None, n: int, audience: str, now: float,
          sections: Collection[str] | None = None,
          segments: Collection[str] | None = None) -> Page:
    """The homepage for one customer (``audience`` :data:`PERSONAL`) or a non-personal
    market homepage (any other audience: the profile only excludes what was bought).

    ``sections`` restricts the page to those keys (in layout order, then any the layout does
    not hold, in the order given); ``segments`` defaults to the profile's.

    A market homepage that excludes nothing (no profile, no purchase since training) is the
    same for every visitor: it is built once per market, ``n`` and sections and kept in the
    view while its rules stay the same object (rules are replaced, never changed in place).
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
    shared = profile is None and (live is None or not live.purchased)
    if shared:
        found = view.market_pages.get((market, n, *keys))
        if found is not None and found[0] is rules:
            out, notes, incomplete = found[1]
            return Page(sections=list(out), layout=name, layout_reason=layout.reason,
                        segments=segs, notes=list(notes), incomplete=incomplete, shared=True)
    b = PageState(view, profile, live, market, n, now, personal, set(keys))
    notes, out, incomplete = list(view.notes), [], False
    for key in keys:
        if key in _PERSONAL_ONLY and not personal:
            continue
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
    if shared:
        if len(view.market_pages) >= _MARKET_PAGES:
            view.market_pages.clear()
        view.market_pages[(market, n, *keys)] = (rules, (tuple(out), tuple(notes), incomplete))
    return Page(sections=out, layout=name, layout_reason=layout.reason, segments=segs,
                notes=notes, incomplete=incomplete, stable_until=b.stable_until, shared=shared)


def _in_market(text: str, market: str | None) -> str:
    """Fill ``{market}``; without a market, drop " in {market}" ("Trending in DE" /
    "Trending")."""
    if market is None:
        text = text.replace(" in {market}", "")
    return text.replace("{market}", market or "your market")


def _section(b: PageState, key: str):
    """(items, reason, anchor id, title fill), ``None`` when the section does not apply to
    this page, or ``"missing"`` when the bundle lacks its list."""
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
    mine = ", your taste first" if b.profile is not None else ""
    if key == "new_arrivals":
        days = b.view.rules.new_arrival_days
        items = b.fill(b.market_list(key, f"new in the last {days} days"))
        return items, f"items launched in the last {days} days{mine}", None, ""
    pct = round(b.view.rules.sale_min_markdown * 100)
    items = b.fill(b.market_list(key, None))
    return items, f"reduced by at least {pct}% in {{market}}{mine}", None, ""


def _because_you_bought(b: PageState):
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


def _back_in_size(b: PageState):
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
    ids, c = b.catalog.ids, b.candidates
    market = [*b.view.market_list("new_arrivals", b.row), *b.catalog.popular(b.row)]
    mine_idx = [i for i in c.idx if i >= 0]
    mine_pos = [k for k, i in enumerate(c.idx) if i >= 0]
    parts: list[Part] = []
    for source, idxs, score_of in (
            ("size_for_you", mine_idx, lambda k: c.shown(c.scores[mine_pos[k]])),
            ("size_market", [i for i, _ in market], lambda k: round(market[k][1], 5))):
        labels = _size_labels(sizes, usual, idxs)

        def make(k: int, source=source, idxs=idxs, score_of=score_of, labels=labels):
            return RecommendedItem(item_id=ids[idxs[k]], score=score_of(k), source=source,
                                   reason=f"in your size {labels[k]}")
        parts.append(([i if labels[k] is not None else -1 for k, i in enumerate(idxs)],
                      make, True))
    return (b.fill(parts), "items on offer in the sizes you keep", None, "")


def _size_labels(sizes, usual: dict[int, int], idxs: list[int]) -> list[str | None]:
    """Per item, the usual size of its system when the item offers it, else ``None``."""
    if not idxs:
        return []
    arr = np.asarray(idxs, dtype=np.intp)
    system = np.asarray(sizes.item_system[arr], dtype=np.intp)
    pos_of = np.full(len(sizes.systems) + 1, -1, dtype=np.intp)  # last: items without sizes
    for s, pos in usual.items():
        pos_of[s] = pos
    pos = pos_of[np.where(system >= 0, system, len(sizes.systems))]
    ok = pos >= 0
    ok[ok] = np.asarray(sizes.item_offered[arr[ok], pos[ok]], dtype=bool)
    orders = [system.order for system in sizes.systems]
    return [orders[s][p] if good else None
            for s, p, good in zip(system.tolist(), pos.tolist(), ok.tolist())]
