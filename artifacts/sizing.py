"""Preselected size: the serving view of a bundle's size model and the one decision function.

The service (``GET /v1/users/{user_id}/size``, ``GET /v1/sessions/{session_id}/size``) and the
offline evaluation (``python -m training evaluate-sizes``) both call :func:`choose_size` with a
:class:`SizeView`, so what is measured is what is served. The trainer
(``training/models/sizes.py``) fits the decision weights on :func:`candidate_features` of this
module, so the features cannot drift between fitting and serving.

The model, per size system (dress sizes, S/M/L, waist, shoes, kids' heights: whatever the
catalogue declares):

- ``order`` (manifest): the sizes from smallest to largest, so "one size up" is defined;
- ``size_loglik`` (bundle table): log P(evidence | c) - how likely a customer whose size in an
  item is ``c`` is to have kept size ``a`` in another item, or found ``a`` too small or too
  large. Learnt from customers' own pairs of purchases, so it absorbs the conventions of a
  catalogue (an "8" in one line is a "10" in another) instead of assuming sizes are a ruler.

Per item (bundle arrays): its size system, the sizes on offer, a fit offset (> 0 runs small:
"too small" feedback and exchanges for a larger size, shrunk toward zero when evidence is thin)
and a prior (what its buyers chose, smoothed toward its category).

Per customer: :class:`artifacts.profiles.SizePreference` evidence from the trainer (kept sizes,
sizes found too small or too large, recency-weighted, probable gifts left out), plus live size
signals (purchases, carts and views that carried a size) for customers and anonymous sessions.

The decision, for every size ``c`` the item offers::

    score(c) = w_nb * NB(c) + w_prior * log prior_item(c) + w_share * share(c)
               + w_shift * |offset| * (NB(c - sign(offset)) - NB(c))

where ``NB(c)`` sums weight * log P(evidence | c) over the evidence (naive Bayes) and
``share(c)`` is the customer's share of kept purchases in ``c``. The weights are fitted by the
trainer on the last part of its own training period. A softmax over the scores gives the
confidence of the best size; below ``min_confidence`` the answer is no size ("too uncertain"),
because a wrong preselection is worse than none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from artifacts.bundle import Bundle
from artifacts.profiles import SizePreference, SizeSignal
from artifacts.vocabulary import Vocabulary

SCHEMA = 1
KINDS = ("kept", "small", "large")
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}
FEATURES = ("nb", "prior", "share", "shift")
#: Used when a bundle names no weights (the trainer had too little data to fit them).
DEFAULT_WEIGHTS = {"nb": 0.5, "prior": 0.8, "share": 1.0, "shift": 2.0}
#: Weight of a live size signal by event type, next to a purchase the trainer counted as 1.
DEFAULT_LIVE_WEIGHTS = {"purchase": 1.0, "cart": 0.5, "view": 0.25, "return": 0.0}
_MIN_PRIOR = 1e-6


class SizeSystemInfo(msgspec.Struct, kw_only=True):
    name: str
    order: list[str]
    """Sizes from smallest to largest; a size's position is its column in the item arrays."""
    row: int
    """First row of this system's block (len(KINDS) * len(order) rows) in size_loglik."""


class SizeModelInfo(msgspec.Struct, kw_only=True):
    """The size model's part of the manifest (``BundleManifest.sizes``)."""

    schema: int = SCHEMA
    systems: list[SizeSystemInfo] = []
    weights: dict[str, float] = {}
    """Decision weights per feature (:data:`FEATURES`); missing ones: :data:`DEFAULT_WEIGHTS`."""
    min_confidence: float = 0.5
    """Below this confidence the answer is no size."""
    live_weights: dict[str, float] = {}
    """Weight of a live size signal per event type; missing: :data:`DEFAULT_LIVE_WEIGHTS`."""
    fitted: dict[str, Any] = {}
    """How the trainer fitted the model (counts, the weights' holdout), for humans."""


class SizeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The size to preselect, or ``None`` with the reason why not.

    ``basis`` is the reason as a fixed code: ``usual``, ``runs_small``, ``runs_large``,
    ``browsing`` (a size); ``uncertain``, ``no_history``, ``not_offered``, ``one_size``,
    ``no_sizes``, ``no_model`` (no size).
    """

    size: str | None
    confidence: float
    reason: str
    basis: str


@dataclass(frozen=True)
class _System:
    name: str
    order: tuple[str, ...]
    index: dict[str, int]
    loglik: np.ndarray  # (len(KINDS) * L, L) float64


@dataclass
class Evidence:
    """A customer's (or session's) evidence in one size system, ready for :func:`nb_scores`."""

    rows: np.ndarray  # int64 rows of the system's loglik block (kind * L + position)
    weights: np.ndarray  # float64, one per row
    kept: np.ndarray  # float64 (L,) weight of kept evidence per size
    browse_only: bool  # only live views / carts: what a shopper has been looking at


class SizeView:
    """Read-only size model over one bundle (or, in the trainer, over fitted arrays).

    ``available`` is False for a bundle without a size model: every answer then says so.
    """

    def __init__(self, info: SizeModelInfo | None, items: Vocabulary, *,
                 item_system: np.ndarray, item_offered: np.ndarray, item_prior: np.ndarray,
                 item_offset: np.ndarray, loglik: np.ndarray):
        self.info = info
        self.items = items
        self.available = info is not None and bool(info.systems)
        self.systems: list[_System] = []
        self.system_index: dict[str, int] = {}
        if not self.available:
            return
        kinds = len(KINDS)
        for s, system in enumerate(info.systems):
            n = len(system.order)
            block = np.asarray(loglik[system.row:system.row + kinds * n, :n], dtype=np.float64)
            self.systems.append(_System(system.name, tuple(system.order),
                                        {label: i for i, label in enumerate(system.order)},
                                        block))
            self.system_index[system.name] = s
        # memory-mapped as stored (a request reads one row); only the small tables are copied
        self.item_system = item_system
        self.item_offered = item_offered
        self.item_prior = item_prior
        self.item_offset = item_offset
        self.weights = np.asarray([info.weights.get(f, DEFAULT_WEIGHTS[f]) for f in FEATURES])
        self.live_weights = {**DEFAULT_LIVE_WEIGHTS, **info.live_weights}
        self.min_confidence = info.min_confidence

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> SizeView:
        info = None
        if bundle.manifest.sizes and bundle.has("item_size_system") and bundle.has("size_loglik"):
            info = msgspec.convert(bundle.manifest.sizes, SizeModelInfo)
        return cls(info, bundle.items, item_system=bundle["item_size_system"],
                   item_offered=bundle["item_size_offered"], item_prior=bundle["item_size_prior"],
                   item_offset=bundle["item_fit_offset"], loglik=bundle["size_loglik"])

    def system_of(self, item_index: int) -> str | None:
        """Name of the item's size system, or None (no model, or an item without sizes)."""
        if not self.available or self.item_system[item_index] < 0:
            return None
        return self.systems[self.item_system[item_index]].name

    def offered(self, item_index: int) -> list[str]:
        """The sizes the item declares on offer, smallest first (empty: none declared)."""
        name = self.system_of(item_index)
        if name is None:
            return []
        system = self.systems[self.item_system[item_index]]
        row = self.item_offered[item_index, :len(system.order)]
        return [system.order[p] for p in np.flatnonzero(row)]


def evidence(view: SizeView, system_index: int, profile_sizes: Sequence[SizePreference] = (),
             live_signals: Sequence[SizeSignal] = ()) -> Evidence | None:
    """The evidence of ``profile_sizes`` (trainer) and ``live_signals`` (events) in one size
    system; None when there is none. Live signals of items in other systems, of unknown items
    or of sizes the system does not know are ignored."""
    system = view.systems[system_index]
    n = len(system.order)
    acc: dict[int, float] = {}
    kept = np.zeros(n)
    browse_only = True
    for pref in profile_sizes:
        if pref.system != system.name or pref.weight <= 0:
            continue
        pos, kind = system.index.get(pref.size), KIND_INDEX.get(pref.kind)
        if pos is None or kind is None:
            continue
        acc[kind * n + pos] = acc.get(kind * n + pos, 0.0) + pref.weight
        if kind == 0:
            kept[pos] += pref.weight
        browse_only = False
    for signal in live_signals:
        weight = view.live_weights.get(signal.kind, 0.0)
        if weight <= 0:
            continue
        item = view.items.index(signal.item_id)
        pos = system.index.get(signal.size)
        if item is None or pos is None or view.item_system[item] != system_index:
            continue
        acc[pos] = acc.get(pos, 0.0) + weight
        kept[pos] += weight
        browse_only = browse_only and signal.kind in ("view", "cart")
    if not acc:
        return None
    rows = np.fromiter(acc.keys(), dtype=np.int64, count=len(acc))
    weights = np.fromiter(acc.values(), dtype=np.float64, count=len(acc))
    return Evidence(rows, weights, kept, browse_only)


def nb_scores(view: SizeView, system_index: int, ev: Evidence) -> np.ndarray:
    """NB(c) for every size of the system: sum of weight * log P(evidence | c)."""
    return ev.weights @ view.systems[system_index].loglik[ev.rows]


def candidate_features(view: SizeView, item_index: int, ev: Evidence
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidate positions, features (candidates x FEATURES), NB over all sizes) for one item.

    Candidates are the sizes the item offers, or every size of its system when it declares
    none. Shared by :func:`choose_size` and the trainer's fit of the weights.
    """
    s = int(view.item_system[item_index])
    n = len(view.systems[s].order)
    nb = nb_scores(view, s, ev)
    offered = view.item_offered[item_index, :n]
    cand = np.flatnonzero(offered) if offered.any() else np.arange(n)
    prior = np.asarray(view.item_prior[item_index, :n], dtype=np.float64)
    log_prior = np.log(np.maximum(prior, _MIN_PRIOR)) if prior.sum() > 0 else np.zeros(n)
    total = ev.kept.sum()
    share = ev.kept / total if total > 0 else ev.kept
    offset = float(view.item_offset[item_index])
    shift = np.zeros(len(cand))
    if offset != 0.0:
        src = cand - int(np.sign(offset))
        ok = (src >= 0) & (src < n)
        shift[ok] = abs(offset) * (nb[src[ok]] - nb[cand[ok]])
    features = np.column_stack([nb[cand], log_prior[cand], share[cand], shift])
    return cand, features, nb


def softmax(scores: np.ndarray) -> np.ndarray:
    z = np.exp(scores - scores.max())
    return z / z.sum()


def _none(reason: str, basis: str, confidence: float = 0.0) -> SizeAnswer:
    return SizeAnswer(size=None, confidence=round(confidence, 4), reason=reason, basis=basis)


def choose_size(view: SizeView, item_index: int, profile_sizes: Sequence[SizePreference] = (),
                live_signals: Sequence[SizeSignal] = (), *,
                min_confidence: float | None = None) -> SizeAnswer:
    """The size to preselect in item ``item_index`` for a customer with ``profile_sizes``
    (batch profile) and ``live_signals`` (live state; pass only signals newer than the
    bundle's training data, the rest is in the profile already).

    ``min_confidence`` overrides the bundle's threshold (0: always name the best size, as the
    evaluation does to draw the precision-coverage curve). Pure: no I/O, no state.
    """
    if not view.available:
        return _none("this bundle has no size model: retrain with sized purchases", "no_model")
    s = int(view.item_system[item_index])
    if s < 0:
        return _none("this item has no sizes", "no_sizes")
    system = view.systems[s]
    n = len(system.order)
    declared = view.item_offered[item_index, :n]
    n_offered = int(declared.sum())
    if n_offered == 1 or (n_offered == 0 and n == 1):
        return _none("one size: nothing to choose", "one_size")
    ev = evidence(view, s, profile_sizes, live_signals)
    if ev is None:
        return _none(f"no size history for {system.name} sizes", "no_history")
    cand, features, nb = candidate_features(view, item_index, ev)
    p = softmax(features @ view.weights)
    k = int(np.argmax(p))
    best, confidence = int(cand[k]), float(p[k])
    threshold = view.min_confidence if min_confidence is None else min_confidence
    offset = float(view.item_offset[item_index])
    usual = int(np.argmax(nb))
    if n_offered and not declared[usual] and best - usual != int(np.sign(offset)):
        return _none(f"your usual size {system.order[usual]} is not on offer", "not_offered",
                     confidence)
    if confidence < threshold:
        return _none(f"too uncertain (confidence {confidence:.2f} < {threshold:.2f})",
                     "uncertain", confidence)
    shift = FEATURES.index("shift")  # the size it would be without the item's fit offset
    base = int(cand[int(np.argmax(features @ view.weights
                                  - features[:, shift] * view.weights[shift]))])
    if offset > 0 and best > base:
        reason, basis = ("runs small: one size up" if best == base + 1
                         else "runs small: a size up"), "runs_small"
    elif offset < 0 and best < base:
        reason, basis = ("runs large: one size down" if best == base - 1
                         else "runs large: a size down"), "runs_large"
    elif ev.browse_only:
        reason, basis = "the size you have been browsing", "browsing"
    else:
        reason, basis = "your usual size", "usual"
    return SizeAnswer(size=system.order[best], confidence=round(confidence, 4), reason=reason,
                      basis=basis)
