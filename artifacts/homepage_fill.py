"""One page while its sections are filled in display order: the page rules and the candidate
streams of the personal sections.

A section's candidates are a list of :data:`~artifacts.homepage_view.Part` (item indices best
first, with the answer item of each position made only for the items placed).
:meth:`PageState.fill` walks them once, skipping what the page already shows, what the
customer must not get again, what the market cannot sell and sensitive items the customer did
not open up to, and keeps category runs short (a Python loop that stops when the section is
full: numpy's per-call cost is higher than the few dozen steps a section takes). Everything
else - per-market lists, their answer items - was prepared once per bundle by
:class:`~artifacts.homepage_view.HomepageView`.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

from artifacts import ranking
from artifacts.catalog import NEIGHBOUR_SOURCE_NAMES
from artifacts.homepage_view import LIST_SOURCES, HomepageView, Part
from artifacts.profiles import (CANDIDATE_SOURCES, BatchProfile, LiveState, float32_column,
                                int32_column, round5)
from artifacts.ranking import RecommendedItem

ITEM_REASON = {"personal": "matches your taste", "also_bought": "goes with what you bought",
               "variant": "another version of something you bought",
               "personal_live": "based on your latest purchases",
               "popular": "popular right now", "buy_again": "you bought this before"}
_ALSO_BOUGHT = NEIGHBOUR_SOURCE_NAMES.index("also_bought")
def _round_plain(score: float) -> float:
    return round(score, 5)


class Candidates:
    """The profile's "for you" list as parallel columns, looked up once per page: item indices
    (-1: not in this catalogue), and per position a key into ``names`` (its source) and a
    score that ``shown`` rounds as answers show it (only for the items placed)."""

    __slots__ = ("idx", "scores", "shown", "keys", "names", "_array")

    def __init__(self, profile: BatchProfile, version: str, index):
        ranked = profile.ranked
        self._array: np.ndarray | None = None
        if ranked is not None and version == profile.bundle_version:
            # the packed form: no id lookups; float32 scores shown as
            # BatchProfile.candidate_scores rounds them (numpy, 5 digits)
            # read in place: a page reads only the first few dozen
            self.idx: Sequence[int] = int32_column(ranked.idx)
            self.scores = float32_column(ranked.scores)
            self.shown = round5
            self.keys: bytes | list[int] = ranked.sources
            self.names: tuple[str, ...] = CANDIDATE_SOURCES
        else:
            self.idx, self.scores, sources = profile.candidate_columns(version, index)
            self.shown = _round_plain
            self.names = tuple(dict.fromkeys(sources))
            where = {name: k for k, name in enumerate(self.names)}
            self.keys = [where[name] for name in sources]

    def buy_again(self) -> list[int]:
        """Positions of the ``buy_again`` candidates."""
        if "buy_again" not in self.names:
            return []
        code = self.names.index("buy_again")
        keys = self.keys
        if isinstance(keys, list):
            return [k for k, c in enumerate(keys) if c == code]
        found, k = [], keys.find(code)
        while k >= 0:
            found.append(k)
            k = keys.find(code, k + 1)
        return found

    def among(self, mask: np.ndarray) -> list[int]:
        """Positions of the candidates ``mask`` flags (one flag per item, and a last one,
        false, that -1 reads), best first."""
        found = self._array
        if found is None:
            # a view of the packed column (no copy); an empty list must not come out float
            found = self._array = np.asarray(self.idx, dtype=np.int32)
        return mask[found].nonzero()[0].tolist()


class PageState:
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
        self.max_run = view.rules.max_category_run
        index = catalog.items.index
        #: shown on the page so far, and never to be shown: bought (unless repurchasable),
        #: bought since training; -1 (an id this catalogue does not know) is never shown
        self.seen: set[int] = ranking.not_again(catalog, profile)
        if live is not None and live.purchased:
            self.seen.update(i for i in map(index, (p.item_id for p in live.purchased))
                             if i is not None)
        self.seen.add(-1)
        self.shown = shown
        self.candidates = (Candidates(self.profile, catalog.version, index)
                           if self.profile is not None else None)
        self.consent = bool(profile is not None and profile.consent_sensitive is True)
        window = view.rules.session_minutes * 60
        #: the page is the same until then (an event leaves the session window), given the
        #: same profile, live state and bundle: the only way time enters a page
        self.stable_until = float("inf")
        self.engaged = self._engaged_categories(now - window, window)

    def _engaged_categories(self, since: float, window: float) -> frozenset[int]:
        """Sensitive categories the customer touched themselves in the current session."""
        if self.live is None:
            return frozenset()
        index, cats = self.catalog.items.index, self.catalog.category
        sensitive = self.view.sensitive
        recent = [x for lst in (self.live.viewed, self.live.cart, self.live.purchased)
                  for x in lst if x.ts >= since]
        if recent:
            self.stable_until = min(x.ts for x in recent) + window
        return frozenset(cats[i] for i in map(index, (x.item_id for x in recent))
                         if i is not None and sensitive[i])

    def fill(self, parts: list[Part], *, never_sensitive: bool = False) -> list[RecommendedItem]:
        """Take items from ``parts`` (best first) that pass every page rule, keeping category
        runs short: an item that would lengthen a run waits for the next place it fits, and is
        dropped if none comes."""
        cats, sensitive, engaged = self.catalog.category, self.view.sensitive, self.engaged
        seen, available = self.seen, self.available
        max_run, n = self.max_run, self.n
        flood = 4 * n
        placed: list[RecommendedItem] = []
        pending: list[tuple] = []  # (category, index, make, position) waiting for a place
        run_cat, run_len = -1, 0
        for idxs, make, personal in parts:
            screen = never_sensitive or (personal and not self.consent)
            for pos, idx in enumerate(idxs):
                if idx in seen or not available[idx]:
                    continue
                if screen and sensitive[idx] and (never_sensitive or cats[idx] not in engaged):
                    continue
                seen.add(idx)  # reserved; released below if it never finds a place
                cat = cats[idx]
                if not pending and (cat != run_cat or run_len < max_run):
                    run_len = run_len + 1 if cat == run_cat else 1
                    run_cat = cat
                    placed.append(make(pos))
                    if len(placed) >= n:
                        break
                    continue
                pending.append((cat, idx, make, pos))
                moved = True
                while moved and pending and len(placed) < n:
                    moved = False
                    for k, waiting in enumerate(pending):
                        cat = waiting[0]
                        if cat == run_cat and run_len >= max_run:
                            continue
                        run_len = run_len + 1 if cat == run_cat else 1
                        run_cat = cat
                        placed.append(waiting[2](waiting[3]))
                        del pending[k]
                        moved = True
                        break
                if len(placed) >= n or len(pending) > flood:  # full, or one category floods
                    break
            else:
                continue
            break
        for waiting in pending:
            seen.discard(waiting[1])
        return placed

    # -- the candidate streams of the sections, as parts ----------------------------------------
    def for_you(self) -> list[Part]:
        c, ids = self.candidates, self.catalog.ids
        idxs, names, keys, scores, shown = c.idx, c.names, c.keys, c.scores, c.shown
        if "buy_again" in self.shown:  # they have their own section
            again = c.buy_again()
            if again:
                idxs = list(idxs)  # a copy to mark them in (the column may be a read-only view)
                for k in again:
                    idxs[k] = -1

        def make(pos: int) -> RecommendedItem:
            source = names[keys[pos]]
            return RecommendedItem(item_id=ids[idxs[pos]], score=shown(scores[pos]),
                                   source=source, reason=ITEM_REASON.get(source))
        return [(idxs, make, True)]

    def buy_again(self) -> list[Part]:
        c, catalog, ids = self.candidates, self.catalog, self.catalog.ids
        parts: list[Part] = []
        at = c.buy_again()
        if at:
            idx, scores, shown = c.idx, c.scores, c.shown
            parts.append(([idx[k] for k in at], lambda pos: RecommendedItem(
                item_id=ids[idx[at[pos]]], score=shown(scores[at[pos]]), source="buy_again",
                reason="you bought this before"), True))
        again = [i for i in map(catalog.items.index, self.profile.purchased)
                 if i is not None and catalog.repurchasable(i)]
        if again:
            parts.append((again, lambda pos: RecommendedItem(
                item_id=ids[again[pos]], score=0.0, source="buy_again",
                reason="you bought this before"), True))
        return parts

    def neighbours_of(self, anchor: int, name: str) -> list[Part]:
        """The anchor's neighbour list (-1 padded at the end: skipped like unknown items)."""
        neighbours, scores, codes = self.view.neighbours(anchor)
        ids = self.catalog.ids
        reasons = (f"bought together with {name}", f"similar to {name}")

        def make(pos: int) -> RecommendedItem:
            code = codes[pos]
            return RecommendedItem(item_id=ids[neighbours[pos]], score=round5(scores[pos]),
                                   source=NEIGHBOUR_SOURCE_NAMES[code],
                                   reason=reasons[code != _ALSO_BOUGHT])
        return [(neighbours, make, True)]

    def recently_viewed(self) -> list[Part]:
        index, ids = self.catalog.items.index, self.catalog.ids
        viewed = [(idx, k) for k, idx in enumerate(map(index, (v.item_id
                                                                for v in self.live.viewed)))
                  if idx is not None]
        return [([idx for idx, _ in viewed], lambda pos: RecommendedItem(
            item_id=ids[viewed[pos][0]], score=round(round(1.0 / (1 + viewed[pos][1]), 5), 5),
            source="recently_viewed", reason="you viewed this"), True)]

    def trending(self) -> list[Part]:
        return [self.view.trending_part(self.row)]

    def market_list(self, key: str, reason: str | None) -> list[Part]:
        """The customer's own candidates that are in the market's list first, then the list
        itself; on a personal page the whole section is personalised (sensitive rule).
        ``reason`` of every item, or ``None`` for the markdown of each."""
        view, personal = self.view, self.profile is not None
        parts: list[Part] = []
        c = self.candidates
        if c is not None:
            at = c.among(view.market_mask(key, self.row))
            if at:
                ids, mine = self.catalog.ids, LIST_SOURCES[key][1]
                idx, scores, shown = c.idx, c.scores, c.shown
                parts.append((list(map(idx.__getitem__, at)), lambda pos: RecommendedItem(
                    item_id=ids[idx[at[pos]]], score=shown(scores[at[pos]]), source=mine,
                    reason=reason or f"{view.markdown(idx[at[pos]])}% off"), True))
        parts.append(view.list_part(key, self.row, reason, personal))
        return parts
