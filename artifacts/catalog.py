"""The serving view of a bundle: ids, availability per market, neighbour and popular lists.

Used by the service for every request and by the offline evaluation, so both see the same
catalogue.

Built once per loaded bundle. Everything a page view touches is either a memory-mapped array
row or a small precomputed Python structure, so a request does dict lookups and short loops.
"""

from __future__ import annotations

import numpy as np

from artifacts.bundle import NEIGHBOUR_SOURCES, Bundle

NEIGHBOUR_SOURCE_NAMES = ("also_bought", "similar")  # co_purchase, als


class Catalog:
    """Read-only serving structures over one :class:`Bundle`."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.version = bundle.version
        self.items = bundle.items
        self.ids = bundle.items.ids
        self.markets: list[str] = list(bundle.manifest.markets)
        self._market_index = {m: i for i, m in enumerate(self.markets)}
        n_items = len(self.ids)
        in_stock = np.asarray(bundle["item_in_stock"], dtype=bool)
        sold = np.unpackbits(np.asarray(bundle["item_markets"]), axis=1, bitorder="little",
                             count=len(self.markets)).astype(bool) if self.markets else \
            np.ones((n_items, 0), dtype=bool)
        # row 0: available anywhere (no market named); row 1+m: available in market m
        avail = np.vstack([in_stock[None, :], (sold.T & in_stock)])
        self._available = [row.astype(np.uint8).tobytes() for row in avail]
        self.category: list[int] = np.asarray(bundle["item_category"]).tolist()
        self._repurchasable = frozenset(np.flatnonzero(bundle["item_repurchasable"]).tolist())
        #: sensitive items (maternity, intimate, medical): one flag per item, and their indices
        self.sensitive = np.asarray(bundle["item_sensitive"], dtype=np.uint8).tobytes()
        self.sensitive_idx = frozenset(np.flatnonzero(bundle["item_sensitive"]).tolist())
        self.categories: list[str] = list(bundle.manifest.categories)
        # plain ndarray views of the memory maps: same pages, without np.memmap's per-index
        # Python overhead on every request
        self._neighbours_idx = np.asarray(bundle["neighbours_idx"])
        self._neighbours_score = np.asarray(bundle["neighbours_score"])
        self._neighbours_source = np.asarray(bundle["neighbours_source"])
        pop_idx = np.asarray(bundle["popular_idx"])
        pop_score = np.asarray(bundle["popular_score"])
        self._popular: list[list[tuple[int, float]]] = []
        for row in range(pop_idx.shape[0]):
            valid = pop_idx[row] >= 0
            scores = np.round(pop_score[row][valid].astype(np.float64), 5)
            self._popular.append(list(zip(pop_idx[row][valid].tolist(), scores.tolist())))
        assert len(NEIGHBOUR_SOURCES) == len(NEIGHBOUR_SOURCE_NAMES)

    def market_row(self, market: str | None) -> int:
        """Row for ``market`` in the availability and popularity tables (0: no market).

        Raises ``KeyError`` for a market the bundle does not know.
        """
        if market is None:
            return 0
        return self._market_index[market] + 1

    def knows_market(self, market: str) -> bool:
        return market in self._market_index

    def repurchasable(self, index: int) -> bool:
        """Whether a customer who bought item ``index`` may be recommended it again."""
        return index in self._repurchasable

    def available(self, market_row: int) -> bytes:
        """Byte per item: 1 when it may be shown in this market (sold there and in stock)."""
        return self._available[market_row]

    def popular(self, market_row: int) -> list[tuple[int, float]]:
        """(item index, score rounded to 5 digits) best first, for the market row (0: overall)."""
        return self._popular[market_row]

    def neighbours(self, index: int) -> tuple[list[int], list[float], list[int]]:
        """Neighbour indices, scores (rounded to 5 digits) and source codes of one item,
        best first."""
        idx = self._neighbours_idx[index]
        count = int(np.count_nonzero(idx >= 0))  # rows are -1 padded at the end
        return (idx[:count].tolist(),
                np.round(self._neighbours_score[index, :count].astype(np.float64), 5).tolist(),
                self._neighbours_source[index, :count].tolist())

    def neighbour_source(self, code: int) -> str:
        return NEIGHBOUR_SOURCE_NAMES[code]
