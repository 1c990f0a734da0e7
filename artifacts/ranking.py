"""The selection step every recommendation answer goes through, shared by the service and the
offline evaluation so that what is measured is exactly what is served.

Pure functions over a :class:`~artifacts.catalog.Catalog` and a batch profile: no I/O, no HTTP.
The service adds profile lookup, degradation and validation around them.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from artifacts.catalog import Catalog
from artifacts.profiles import BatchProfile

POPULAR = "popular"
POPULAR_MARKET = "popular_market"
POPULAR_CATEGORY = "popular_category"
PERSONAL = "personal"


class RecommendedItem(msgspec.Struct, kw_only=True, gc=False):
    """One item of an answer. ``gc=False``: it holds only strings and numbers, so it can never
    be part of a reference cycle, and the collector need not track the dozens made per page."""

    item_id: str
    score: float
    source: str
    """Where the item came from: personal, also_bought, similar, popular_market, popular, ..."""
    reason: str | None = None


class Selection(msgspec.Struct):
    items: list[RecommendedItem]
    source: str
    notes: list[str]


def popular_source(market: str | None) -> str:
    return POPULAR_MARKET if market else POPULAR


def fill_popular(catalog: Catalog, row: int, n: int, out: list[RecommendedItem],
                 seen: set[int], source: str, category: int | None = None,
                 sold_in: int | None = None) -> None:
    """Append popular items of the market row (optionally one category) until ``out`` has
    ``n``, skipping ``seen`` and items not available in market row ``sold_in`` (default:
    ``row``; the overall list, row 0, tops up a market's answer with what that market
    sells); ``seen`` is updated."""
    available = catalog.available(row if sold_in is None else sold_in)
    ids = catalog.ids
    cats = catalog.category
    for idx, score in catalog.popular(row):
        if len(out) >= n:
            return
        if idx in seen or not available[idx] or (category is not None and cats[idx] != category):
            continue
        seen.add(idx)
        out.append(RecommendedItem(item_id=ids[idx], score=score, source=source))


def purchased_indices(catalog: Catalog, profile: BatchProfile | None) -> set[int]:
    """Every catalogue item the customer bought (as far as the profile keeps)."""
    if profile is None:
        return set()
    index = catalog.items.index
    return {i for i in map(index, profile.purchased) if i is not None}


def not_again(catalog: Catalog, profile: BatchProfile | None) -> set[int]:
    """Items the customer bought that must not be recommended to them again: every purchase
    except those the bundle marks repurchasable (``item_repurchasable``)."""
    return {i for i in purchased_indices(catalog, profile) if not catalog.repurchasable(i)}


def for_user(catalog: Catalog, profile: BatchProfile | None, *, n: int,
             market: str | None, repurchase: bool = False,
             exclude: Iterable[str] = (), hide_sensitive: bool = False) -> Selection:
    """"For you": the profile's candidates minus items unavailable in ``market`` and minus
    what the customer bought, topped up with popular items of the market, then overall.
    Without a profile: popular.

    ``repurchase=True`` is the "for you" rule of DESIGN.md: a bought item stays when the
    bundle marks it repurchasable (:func:`not_again`), so the trainer's ``buy_again``
    candidates are served. ``False`` (the default) excludes every item in
    ``profile.purchased``, which callers such as batch e-mails rely on ("no item the customer
    just bought", and their own exclusions passed in that list).

    ``exclude`` names items left out whatever the rule, e.g. what the customer bought since
    the last training run ("never the jacket you bought yesterday"). ``hide_sensitive``
    leaves out sensitive items (the customer did not consent to them), top-ups included."""
    row = catalog.market_row(market)
    available = catalog.available(row)
    index = catalog.items.index
    blocked = set(exclude)
    out: list[RecommendedItem] = []
    notes: list[str] = []
    taken: set[int] = set()
    if profile is not None:
        ids, sensitive = catalog.ids, catalog.sensitive
        bought = set(profile.purchased)
        kept: list[int] = []  # positions in the candidate list
        kept_ids: list[str] = []
        for position, idx in enumerate(profile.candidate_indices(catalog.version, index)):
            if len(kept) >= n:
                break
            if idx < 0 or idx in taken or not available[idx] or \
                    (hide_sensitive and sensitive[idx]):
                continue
            item_id = ids[idx]
            if item_id in blocked or (item_id in bought
                                      and not (repurchase and catalog.repurchasable(idx))):
                continue
            taken.add(idx)
            kept.append(position)
            kept_ids.append(item_id)
        out = [RecommendedItem(item_id=item_id, score=score, source=source)
               for item_id, score, source in zip(kept_ids, *profile.candidates_at(kept))]
        if out:
            source = PERSONAL
            if len(out) < n:
                notes.append("topped up with popular items")
        else:  # nothing of theirs left to show (bought, unavailable here, or no candidates)
            source = popular_source(market)
            notes.append("no personal candidates to show: popular items")
    else:
        source = popular_source(market)
    if len(out) < n:  # the full exclusion set is only needed for the top-up
        seen = not_again(catalog, profile) if repurchase else purchased_indices(catalog, profile)
        seen.update(i for i in map(index, blocked) if i is not None)
        seen |= taken
        if hide_sensitive:
            seen |= catalog.sensitive_idx
        fill_popular(catalog, row, n, out, seen, popular_source(market))
        if len(out) < n and row != 0:
            fill_popular(catalog, 0, n, out, seen, POPULAR, sold_in=row)
    return Selection(out, source, notes)


def for_you(catalog: Catalog, profile: BatchProfile | None, *, n: int, market: str | None,
            exclude: Iterable[str] = ()) -> Selection:
    """The "for you" list as served (and measured offline): :func:`for_user` with the
    repurchase rule and the customer's consent. A customer who opted out of personalisation
    (``consent_personalisation`` false) gets the popular list without what they bought;
    sensitive items appear only when the customer consented to them (``consent_sensitive``)."""
    opted_out = profile is not None and profile.consent_personalisation is False
    return for_user(catalog, None if opted_out else profile, n=n, market=market,
                    repurchase=True,
                    exclude=[*profile.purchased, *exclude] if opted_out else exclude,
                    hide_sensitive=profile is not None and profile.consent_sensitive is not True)


def similar(catalog: Catalog, item: int, *, n: int, market: str | None,
            exclude: set[int] = frozenset()) -> Selection:
    """Neighbours of item index ``item`` available in ``market`` and not in ``exclude``,
    topped up with popular items of the same category, then of the market."""
    row = catalog.market_row(market)
    available = catalog.available(row)
    seen = {item, *exclude}
    notes: list[str] = []
    out: list[RecommendedItem] = []
    ids = catalog.ids
    neighbours, scores, sources = catalog.neighbours(item)
    for nidx, score, code in zip(neighbours, scores, sources):
        if len(out) >= n:
            break
        if nidx in seen or not available[nidx]:
            continue
        seen.add(nidx)
        out.append(RecommendedItem(item_id=ids[nidx], score=score,
                                   source=catalog.neighbour_source(code)))
    source = out[0].source if out else POPULAR_CATEGORY
    if len(out) < n:
        notes.append("topped up with popular items of the same category"
                     if out else "no co-purchase data for this item: popular in its category")
        fill_popular(catalog, row, n, out, seen, POPULAR_CATEGORY, category=catalog.category[item])
    if len(out) < n:
        fill_popular(catalog, row, n, out, seen, popular_source(market))
    return Selection(out, source, notes)
