"""One mapping from external ids to contiguous indices, built once and saved with the bundle."""

from collections.abc import Iterable, Sequence

import numpy as np


class Vocabulary:
    """Bidirectional map between external string ids and indices ``0..len-1``.

    The order is the order the ids were given in; every array in a bundle that is indexed by
    item uses this order. Unknown ids map to ``None`` - never to NaN or -1 - so callers must
    decide what an unknown id means for them.
    """

    __slots__ = ("_ids", "_index", "index")

    def __init__(self, ids: Sequence[str] | Iterable[str]):
        self._ids: list[str] = [str(i) for i in ids]
        self._index: dict[str, int] = {v: i for i, v in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            raise ValueError("vocabulary ids must be unique")
        #: ``index(item_id) -> int | None``: the dict's own ``get``, so the lookup on every
        #: request costs no Python frame.
        self.index = self._index.get

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def id(self, index: int) -> str:
        """External id at ``index`` (raises ``IndexError`` when out of range)."""
        return self._ids[index]

    @property
    def ids(self) -> list[str]:
        """The ids in index order (do not mutate)."""
        return self._ids

    def indices(self, item_ids: Iterable[str]) -> np.ndarray:
        """Indices of the known ids among ``item_ids``, in order; unknown ids are dropped."""
        get = self._index.get
        found = [i for i in (get(v) for v in item_ids) if i is not None]
        return np.asarray(found, dtype=np.int64)

    def to_array(self) -> np.ndarray:
        """The ids as a fixed-width unicode array, suitable for ``np.save`` without pickle."""
        return np.asarray(self._ids, dtype=np.str_)

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Vocabulary":
        return cls(array.tolist())
