"""What the homepage reads from one bundle, prepared once per bundle (and per market on first
use) so that a page view does little more than a short loop per section.

The market's own lists - what is trending, new arrivals, on sale - are the same for everyone in
a market. :class:`HomepageView` keeps each of them as a :data:`Part`: the item indices sold and
in stock in that market, in list order, with their answer items built once. A page view then
only skips what the page already shows or the customer may not see, and hands out the prepared
items. The parts do not depend on the layout rules, so a copy of the view with other rules (the
offline evaluation makes those) shares them safely.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Callable, Sequence

import numpy as np

from artifacts import ranking
from artifacts.catalog import Catalog
from artifacts.homepage_rules import rules_from_manifest
from artifacts.ranking import RecommendedItem
from artifacts.sizing import SizeView

#: section -> (source of the market's list, source of the customer's own candidates in it)
LIST_SOURCES = {"new_arrivals": ("new_arrival", "new_for_you"),
                "on_sale": ("on_sale", "on_sale_for_you")}

#: A stretch of a section's candidate stream: item indices best first (-1: skip), the answer
#: item of a position (called only for the items placed), and whether the stretch is personal
#: (drawn from what the customer did: the sensitive rule applies to it).
Part = tuple[list[int], Callable[[int], RecommendedItem], bool]


class HomepageView:
    """What the homepage reads from one bundle, built once per :class:`Catalog`."""

    def __init__(self, catalog: Catalog):
        bundle = catalog.bundle
        self.catalog = catalog
        self.rules, self.notes = rules_from_manifest(bundle.manifest)
        self.sensitive = catalog.sensitive
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
        self._masks: dict[tuple[str, int], np.ndarray] = {}
        # the neighbour lists as flat buffers over the memory maps: a page reads one row of
        # each with two C calls (numpy's per-call cost is most of a row's otherwise)
        self._neighbours = tuple(_RowReader(bundle[f"neighbours_{name}"], code)
                                 for name, code in (("idx", "i"), ("score", "f"),
                                                    ("source", "B")))
        self._parts: dict[tuple, tuple[list[int], list[RecommendedItem]]] = {}
        #: non-personal pages by (market, n, section keys): (rules they were built by, page)
        self.market_pages: dict[tuple, tuple[object, object]] = {}

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
        """(item index, score) of the market's ``new_arrivals`` or ``on_sale`` list."""
        lists = self.lists[key]
        return lists[row] if lists is not None else []

    def market_set(self, key: str, row: int) -> frozenset[int]:
        found = self._sets.get((key, row))
        if found is None:
            found = self._sets[(key, row)] = frozenset(i for i, _ in self.market_list(key, row))
        return found

    def market_mask(self, key: str, row: int) -> np.ndarray:
        """One flag per item: in the market's list; and a last one, false, for index -1."""
        found = self._masks.get((key, row))
        if found is None:
            found = np.zeros(len(self.catalog.ids) + 1, dtype=bool)
            found[list(self.market_set(key, row))] = True
            self._masks[(key, row)] = found
        return found

    def neighbours(self, anchor: int) -> tuple[Sequence[int], Sequence[float], Sequence[int]]:
        """The anchor's neighbours best first, -1 padded at the end: indices, scores as
        stored (not rounded) and source codes into ``catalog.NEIGHBOUR_SOURCE_NAMES``."""
        idx, score, source = self._neighbours
        return idx.row(anchor), score.row(anchor), source.row(anchor)

    # -- the market's lists as prepared parts ---------------------------------------------------
    def trending_part(self, row: int) -> Part:
        """What sells in the market (row 0: overall), then overall; never personal."""
        found = self._parts.get(("trending", row))
        if found is None:
            catalog = self.catalog
            market = catalog.markets[row - 1] if row else None
            pairs = [(idx, score, ranking.popular_source(market),
                      f"trending in {market}" if market else "trending")
                     for idx, score in catalog.popular(row)]
            if row != 0:
                pairs += [(idx, score, ranking.POPULAR, "trending")
                          for idx, score in catalog.popular(0)]
            found = self._parts[("trending", row)] = self._prepare(row, pairs)
        return found[0], found[1].__getitem__, False

    def list_part(self, key: str, row: int, reason: str | None, personal: bool) -> Part:
        """The market's ``new_arrivals`` or ``on_sale`` list; ``reason`` of every item, or
        ``None`` for the markdown of each (``on_sale``)."""
        found = self._parts.get((key, row, reason))
        if found is None:
            source = LIST_SOURCES[key][0]
            pairs = [(idx, score, source, reason or f"{self.markdown(idx)}% off")
                     for idx, score in self.market_list(key, row)]
            found = self._parts[(key, row, reason)] = self._prepare(row, pairs)
        return found[0], found[1].__getitem__, personal

    def _prepare(self, row: int, pairs) -> tuple[list[int], list[RecommendedItem]]:
        """Drop what cannot be shown in the market whoever asks (not sold there, out of
        stock: the page would skip it anyway) and build the answer items once."""
        available, ids = self.catalog.available(row), self.catalog.ids
        kept = [p for p in pairs if available[p[0]]]
        return ([p[0] for p in kept],
                [RecommendedItem(item_id=ids[idx], score=round(score, 5), source=source,
                                 reason=reason) for idx, score, source, reason in kept])


class _RowReader:
    """Rows of a 2-d bundle array as ``array.array`` (``code``), read from its buffer; a
    numpy row copy where the stored dtype or layout does not match the C type."""

    def __init__(self, values, code: str):
        values = np.asarray(values)
        self._width = values.shape[1]
        native = np.dtype(code).newbyteorder("=")
        if values.dtype == native and values.flags["C_CONTIGUOUS"] and \
                array(code).itemsize == native.itemsize:
            self._code, self._size = code, native.itemsize * self._width
            self._buffer = memoryview(values).cast("B")
        else:
            self._code, self._values = None, values

    def row(self, r: int) -> Sequence:
        if self._code is None:
            return self._values[r].tolist()
        out = array(self._code)
        out.frombytes(self._buffer[r * self._size:(r + 1) * self._size])
        return out


def _market_lists(bundle, prefix: str) -> list[list[tuple[int, float]]] | None:
    if not bundle.has(f"{prefix}_idx"):
        return None
    idx, score = np.asarray(bundle[f"{prefix}_idx"]), np.asarray(bundle[f"{prefix}_score"])
    return [list(zip(idx[r][idx[r] >= 0].tolist(), score[r][idx[r] >= 0].tolist()))
            for r in range(idx.shape[0])]
