"""Size model: per customer and size system the size they keep, per item whether it runs small
or large, per size system the order of its sizes (the decision itself is
:func:`artifacts.sizing.choose_size`, shared with the service).

From the purchases that carry a size, in items whose catalogue row names a size system:

- **evidence** per purchase: ``kept`` (not returned; fit feedback "fit" or none), ``small`` /
  ``large`` (fit feedback, or a return exchanged within ``exchange_days`` for a larger /
  smaller size of the same item); a return with nothing else to go on says nothing and is
  dropped. Recent purchases weigh more (``half_life_days``).
- **probable gifts** do not count: purchases in a department that is a small minority of the
  customer's purchases (a men's item in a women's history, a child's size), and sizes more than
  ``far_steps`` positions from the customer's median kept size in that system.
- **item fit offset**: (too small - too large) / (feedback + ``offset_prior``): > 0 runs small,
  shrunk toward zero when evidence is thin. **Item prior**: the sizes its buyers chose,
  smoothed toward its category and the system.
- **size_loglik**: log P(evidence | size), counted over pairs of purchases of the same customer
  (one kept purchase is the "size", the others the evidence), so a catalogue's own conventions
  are learnt rather than assumed.
- **decision weights**: the model is fitted once on the purchases before the last
  ``holdout_fraction`` of the period; the weights of :data:`artifacts.sizing.FEATURES` are
  fitted (multinomial logit) on the kept purchases of that last part, through
  :func:`artifacts.sizing.candidate_features`; then the model is refitted on everything.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import msgspec
import numpy as np
import polars as pl

from artifacts.profiles import ProfileRecord, SizePreference
from artifacts.sizing import (DEFAULT_LIVE_WEIGHTS, DEFAULT_WEIGHTS, KINDS, SizeModelInfo,
                              SizeSystemInfo, SizeView)
from artifacts.vocabulary import Vocabulary
from training.data.schema import CanonicalData
from training.interactions import Interactions
from training.models.size_weights import fit_weights
from training.models.sorted_runs import runs

log = logging.getLogger(__name__)

_ALPHA_RANK = {"XXXS": 0, "3XS": 0, "XXS": 1, "2XS": 1, "XS": 2, "S": 3, "M": 4, "L": 5,
               "XL": 6, "XXL": 7, "2XL": 7, "XXXL": 8, "3XL": 8, "XXXXL": 9, "4XL": 9, "5XL": 10}


class SizeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings of the size model. The defaults were chosen on RentTheRunway trained before
    2017-01-01 and validated on 2017-01-01 .. 2017-05-31 (never on the 2017-06-01 test split)
    and checked on the synthetic shop; see benchmarks/RESULTS.md, "Preselected size"."""

    half_life_days: float = 730.0
    """A purchase loses half its weight as evidence every this many days (tried 365, 730,
    1460, no decay: within noise on validation; 730 kept)."""
    gift_department_share: float = 0.25
    """Purchases in a department with less than this share of a customer's purchases are
    probable gifts (when the customer has at least ``gift_min_purchases``)."""
    gift_min_purchases: int = 3
    far_steps: int = 9
    """Sizes more than this many positions from the customer's median kept size in the system
    are probable gifts (customers with at least 3 kept sizes there). Tried 6, 9, off: 9 gains
    a point of exact accuracy on validation over off; 6 leaves a few customers with nothing."""
    exchange_days: float = 30.0
    """A return followed within this many days by a purchase of the same item in a larger
    (smaller) size counts as "too small" ("too large")."""
    offset_prior: float = 3.0
    """Pseudo-count of neutral feedback shrinking each item's fit offset toward zero."""
    prior_strength: float = 3.0
    """Pseudo-count shrinking an item's size prior toward its category's."""
    category_prior_strength: float = 10.0
    """Pseudo-count shrinking a category's size prior toward the size system's."""
    loglik_eps: float = 0.1
    """Additive smoothing of the evidence counts in size_loglik."""
    diagonal_prior: float = 1.0
    """Pseudo-count of "kept size a" for size a, so a thin system still trusts kept sizes."""
    pair_history: int = 30
    """Most recent purchases per customer and system paired to learn size_loglik."""
    max_history: int = 10
    """Most recent purchases per customer and system that count as evidence (tried 5, 7, 10,
    15, all: 10 best on validation, +1 point of accuracy and of precision at 30% over all)."""
    max_evidence: int = 16
    """Most weighty evidence entries kept per customer and system in the batch profile."""
    holdout_fraction: float = 0.15
    """Last part of the training period the decision weights are fitted on."""
    min_holdout_rows: int = 50
    """Fewer held-out kept purchases with history than this: the default weights are used."""
    max_holdout_rows: int = 20_000
    min_confidence: float = 0.5
    """The served threshold: a size is preselected only when the model gives it at least this
    probability (the evaluation also draws the whole precision-coverage curve). On validation:
    47% of RentTheRunway's customers with history answered, 61% of those exactly right."""
    live_weights: dict[str, float] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_LIVE_WEIGHTS))
    """Weight of a live size signal per event type (a trained purchase counts 1)."""
    seed: int = 7

    @classmethod
    def load(cls, path=None) -> SizeConfig:
        if path is None:
            return cls()
        raw = open(path, "rb").read()
        data = msgspec.toml.decode(raw) if str(path).endswith(".toml") else msgspec.json.decode(raw)
        return msgspec.convert(data, cls)


@dataclass
class SizeModel:
    """A fitted size model: manifest part, bundle arrays and the evidence per customer."""

    info: SizeModelInfo
    arrays: dict[str, np.ndarray]
    profiles: dict[int, list[SizePreference]] = field(default_factory=dict)

    def view(self, items: Vocabulary) -> SizeView:
        a = self.arrays
        return SizeView(self.info, items, item_system=a["item_size_system"],
                        item_offered=a["item_size_offered"], item_prior=a["item_size_prior"],
                        item_offset=a["item_fit_offset"], loglik=a["size_loglik"])

    def manifest(self) -> dict:
        return msgspec.to_builtins(self.info)

    def annotate(self, record: ProfileRecord, users: Vocabulary) -> ProfileRecord:
        """Fill the batch profile's size evidence (in place; returns the record)."""
        u = users.index(record.user_id)
        record.profile.sizes = self.profiles.get(u, []) if u is not None else []
        return record


def size_order(labels: list[str], declared: list[list[str]]) -> list[str]:
    """The order of one system's sizes: numeric when every label is a number, the usual
    XS < S < M ... ladder when every label is on it, else the order the catalogue lists them
    in (items' size lists merged; labels never listed go last, in first-seen order)."""
    labels = list(dict.fromkeys(labels))
    try:
        return sorted(labels, key=float)
    except ValueError:
        pass
    if all(label.upper() in _ALPHA_RANK for label in labels):
        return sorted(labels, key=lambda x: (_ALPHA_RANK[x.upper()], x))
    first = {label: i for i, label in enumerate(labels)}
    after: dict[str, set[str]] = {label: set() for label in labels}
    indegree = dict.fromkeys(labels, 0)
    for sizes in declared:
        for a, b in zip(sizes, sizes[1:]):
            if a != b and b not in after[a]:
                after[a].add(b)
                indegree[b] += 1
    ready = sorted((x for x in labels if indegree[x] == 0), key=first.get)
    out: list[str] = []
    while ready:
        x = ready.pop(0)
        out.append(x)
        for y in after[x]:
            indegree[y] -= 1
            if indegree[y] == 0:
                ready.append(y)
        ready.sort(key=first.get)
    return out + [x for x in labels if x not in set(out)]  # a cycle: first-seen order


def _orders(data: CanonicalData, first_sold: pl.DataFrame) -> dict[str, list[str]]:
    """Each size system's order of sizes, from the catalogue's declared sizes and
    ``first_sold`` (one row per bought ``system`` and ``size``, with its first sale ``ts``)."""
    items = data.items.select("item_id", "size_system", "sizes").filter(
        pl.col("size_system").is_not_null())
    declared: dict[str, list[list[str]]] = {}
    labels: dict[str, list[str]] = {}
    for system, sizes in items.select("size_system", "sizes").iter_rows():
        if sizes:
            declared.setdefault(system, []).append(sizes)
            labels.setdefault(system, []).extend(sizes)
    for system, size in first_sold.sort("ts", "system", "size").select(
            "system", "size").iter_rows():
        labels.setdefault(system, []).append(size)
    return {s: size_order(labels[s], declared.get(s, [])) for s in sorted(labels)}


def observations(data: CanonicalData, inter: Interactions, config: SizeConfig
                 ) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """Every sized purchase of a catalogue item with a size system, with its system index,
    position in the system's order, evidence kind (0 kept, 1 small, 2 large, null none),
    feedback (+1 small, -1 large, 0 fit, null none) and gift flag; and the size orders."""
    # item attributes become integer codes per item, gathered by item index: no string column
    # is copied to, grouped or joined over every purchase (at 20M purchases, gigabytes)
    systems = data.items["size_system"]
    system_names = systems.drop_nulls().unique().sort()
    item_system = _codes(systems, system_names)
    item_dept = _codes(data.items["department"],
                       data.items["department"].drop_nulls().unique())
    item_idx = inter.purchases["item_idx"].to_numpy()
    base = inter.purchases.select("user_idx", "item_idx", "ts", "size", "fit", "returned") \
        .with_columns(system=pl.Series(item_system[item_idx]),
                      dept=pl.Series(item_dept[item_idx]))
    sized = base.filter((pl.col("system") >= 0) & pl.col("size").is_not_null())
    if sized.height == 0:
        return sized, {}
    first_sold = (sized.group_by("system", "size").agg(pl.col("ts").min())
                  .with_columns(pl.col("system").replace_strict(
                      np.arange(system_names.len()), system_names)))
    orders = _orders(data, first_sold)
    names = list(orders)
    # (system code, size label) -> (index in names, position in its order)
    labels = sorted({label for order in orders.values() for label in order})
    label_code = {label: c for c, label in enumerate(labels)}
    sys_of = np.full(system_names.len(), -1, np.int32)
    pos_of = np.full((system_names.len(), len(labels)), -1, np.int32)
    for code, name in enumerate(system_names.to_list()):
        if name in orders:
            sys_of[code] = names.index(name)
            for p, label in enumerate(orders[name]):
                pos_of[code, label_code[label]] = p
    code = sized["system"].to_numpy()
    label = _codes(sized["size"], pl.Series(labels, dtype=pl.String))
    pos = np.where(label >= 0, pos_of[code, label], -1)
    obs = (sized.with_columns(sys=pl.Series(sys_of[code]), pos=pl.Series(pos))
           .filter(pl.col("pos") >= 0).drop("system").with_row_index("row"))

    # probable gifts: a department that is a small minority of the customer's purchases
    depts = base.filter(pl.col("dept") >= 0).group_by("user_idx", "dept").len()
    depts = depts.with_columns(total=pl.col("len").sum().over("user_idx")).filter(
        (pl.col("total") >= config.gift_min_purchases)
        & (pl.col("len") < config.gift_department_share * pl.col("total")))
    obs = obs.join(depts.select("user_idx", "dept", gift=pl.lit(True)),
                   on=["user_idx", "dept"], how="left")

    # a return exchanged soon after for another size of the same item says which way
    returned = pl.col("returned").fill_null(False)
    later = obs.select("user_idx", "item_idx", ts_b="ts", pos_b="pos")
    exchange = (obs.filter(returned & pl.col("fit").is_null())
                .select("row", "user_idx", "item_idx", "ts", "pos")
                .join(later, on=["user_idx", "item_idx"])
                .filter((pl.col("ts_b") > pl.col("ts")) & (pl.col("pos_b") != pl.col("pos"))
                        & (pl.col("ts_b") <= pl.col("ts")
                           + dt.timedelta(days=config.exchange_days)))
                .sort("ts_b", "pos_b").group_by("row").first()
                .select("row", exchange=(pl.col("pos_b") - pl.col("pos")).sign()))
    obs = obs.join(exchange, on="row", how="left")
    fit = pl.col("fit")
    obs = obs.with_columns(
        kind=pl.when(fit == "small").then(1).when(fit == "large").then(2)
        .when(pl.col("exchange") == 1).then(1).when(pl.col("exchange") == -1).then(2)
        .when(returned).then(None).otherwise(0).cast(pl.Int8),
        feedback=pl.when(fit == "small").then(1).when(fit == "large").then(-1)
        .when(fit == "fit").then(0).otherwise(pl.col("exchange")).cast(pl.Int8),
    )
    # sizes far from the customer's usual one in the system (a child's size, a partner's)
    usual = (obs.filter((pl.col("kind") == 0) & pl.col("gift").is_null())
             .group_by("user_idx", "sys").agg(med=pl.col("pos").median(), n=pl.len())
             .filter(pl.col("n") >= 3))
    obs = obs.join(usual.select("user_idx", "sys", "med"), on=["user_idx", "sys"], how="left")
    far = (pl.col("pos") - pl.col("med")).abs() > config.far_steps
    obs = obs.with_columns(gift=pl.col("gift").fill_null(False) | far.fill_null(False))
    # back in purchase order (the joins above need not keep it): rows were numbered in it
    return obs.sort("row").select("user_idx", "item_idx", "ts", "sys", "pos", "kind",
                                  "feedback", "gift"), orders


def _codes(column: pl.Series, values: pl.Series) -> np.ndarray:
    """Per row of ``column``, the position of its value in ``values`` (-1 for a null or a
    value not in ``values``)."""
    return column.replace_strict(values, np.arange(values.len()), default=-1,
                                 return_dtype=pl.Int32).to_numpy()


@dataclass
class _Fitted:
    item_offset: np.ndarray
    item_prior: np.ndarray
    loglik: np.ndarray
    profiles: dict[int, list[SizePreference]]


def _fit_core(obs: pl.DataFrame, end: dt.datetime, item_system: np.ndarray,
              item_category: np.ndarray, n_categories: int, orders: dict[str, list[str]],
              config: SizeConfig, *, with_profiles: bool = True,
              profile_users: pl.Series | None = None) -> _Fitted:
    """Offsets, priors, size_loglik and per-customer evidence from ``obs`` (one fit);
    the evidence only of ``profile_users`` when given."""
    names = list(orders)
    lengths = np.array([len(orders[s]) for s in names])
    width = int(lengths.max())
    n_items = len(item_system)
    kinds = len(KINDS)
    own = obs.filter(~pl.col("gift"))

    # item fit offset, shrunk toward zero
    fb = own.drop_nulls("feedback").group_by("item_idx").agg(
        s=pl.col("feedback").cast(pl.Float64).sum(), n=pl.len())
    offset = np.zeros(n_items, np.float32)
    offset[fb["item_idx"].to_numpy()] = (fb["s"].to_numpy()
                                         / (fb["n"].to_numpy() + config.offset_prior))

    # item prior: what its buyers chose -> category -> system
    item_idx, pos = own["item_idx"].to_numpy(), own["pos"].to_numpy()
    counts = np.zeros((n_items, width))
    np.add.at(counts, (item_idx, pos), 1.0)
    sys_counts = np.zeros((len(names), width))
    np.add.at(sys_counts, (own["sys"].to_numpy(), pos), 1.0)
    valid = np.arange(width)[None, :] < lengths[:, None]
    sys_prior = np.where(valid, sys_counts + 0.5, 0.0)
    sys_prior /= sys_prior.sum(axis=1, keepdims=True)
    cat_counts = np.zeros((n_categories, len(names), width))
    np.add.at(cat_counts, (item_category[item_idx], own["sys"].to_numpy(), pos), 1.0)
    beta_c = config.category_prior_strength
    cat_prior = (cat_counts + beta_c * sys_prior[None]) / (
        cat_counts.sum(axis=2, keepdims=True) + beta_c)
    has = item_system >= 0
    prior = np.zeros((n_items, width), np.float32)
    base = cat_prior[item_category[has], item_system[has]]
    beta = config.prior_strength
    prior[has] = (counts[has] + beta * base) / (counts[has].sum(axis=1, keepdims=True) + beta)

    # size_loglik: pairs of one customer's purchases in one system
    rows0 = np.concatenate([[0], np.cumsum(kinds * lengths)[:-1]])
    usable = _with_recency(own.filter(pl.col("kind").is_not_null())
                           .select("user_idx", "ts", "sys", "pos", "kind"))
    recent = usable.filter(pl.col("back") < config.pair_history).with_columns(
        n=pl.min_horizontal("n_sys", config.pair_history)).filter(pl.col("n") >= 2)
    table = pair_table(recent, rows0, lengths, width)
    loglik = np.zeros_like(table, dtype=np.float32)
    for s, n in enumerate(lengths):
        block = table[rows0[s]:rows0[s] + kinds * n, :n] + config.loglik_eps
        block[np.arange(n), np.arange(n)] += config.diagonal_prior  # kept a | size a
        loglik[rows0[s]:rows0[s] + kinds * n, :n] = np.log(block / block.sum(axis=0))

    profiles: dict[int, list[SizePreference]] = {}
    if with_profiles:
        if profile_users is not None:
            usable = usable.filter(pl.col("user_idx").is_in(profile_users.implode()))
        profiles = _evidence_profiles(usable, end, names, orders, config)
    return _Fitted(offset, prior, loglik, profiles)


def pair_table(recent: pl.DataFrame, rows0: np.ndarray, lengths: np.ndarray,
               width: int) -> np.ndarray:
    """Size-pair counts for ``size_loglik``: for every ordered pair (a, b) of purchases of one
    customer in one size system (``recent``: columns ``user_idx``, ``sys``, ``pos``, ``kind``
    and ``n``, the customer's purchase count in that system, >= 2), b kept (kind 0) and not a
    itself, ``1 / (n - 1)`` is added at row ``rows0[sys] + kind * lengths[sys] + pos`` of a,
    column ``pos`` of b.

    Summed per customer and distinct (kind, size) instead of joining purchase to purchase: a
    customer's sizes are few, while the pairs of the last ``pair_history`` purchases are up to
    its square per customer (at 20M purchases, hundreds of millions of rows).
    """
    table = np.zeros((int(len(KINDS) * lengths.sum()), width))
    if not recent.height:
        return table
    kept = recent.filter(pl.col("kind") == 0)
    a = recent.group_by("user_idx", "sys", "kind", "pos").agg(
        w=(1.0 / (pl.col("n") - 1)).sum())
    b = kept.group_by("user_idx", "sys", "pos").agg(c=pl.len())
    pairs = a.join(b, on=["user_idx", "sys"], suffix="_b")
    sys_ = pairs["sys"].to_numpy()
    np.add.at(table, (rows0[sys_] + pairs["kind"].to_numpy() * lengths[sys_]
                      + pairs["pos"].to_numpy(), pairs["pos_b"].to_numpy()),
              pairs["w"].to_numpy() * pairs["c"].to_numpy())
    # a kept purchase is not its own pair
    sys_, pos = kept["sys"].to_numpy(), kept["pos"].to_numpy()
    np.add.at(table, (rows0[sys_] + pos, pos), -1.0 / (kept["n"].to_numpy() - 1))
    return table


def _with_recency(obs: pl.DataFrame) -> pl.DataFrame:
    """``obs`` (one row per purchase, in purchase order per customer) with ``back``: 0 for the
    customer's latest purchase in the row's size system, 1 for the one before, ...; and
    ``n_sys``: their purchases in that system.

    One stable sort by (customer, system) of an array already in customer order, then
    positions within runs: at 20M purchases a fraction of what a window over the two keys
    costs."""
    if obs.height == 0:
        return obs.with_columns(back=pl.lit(0, pl.Int32), n_sys=pl.lit(0, pl.Int32))
    key = obs["user_idx"].to_numpy().astype(np.int64) * (int(obs["sys"].max()) + 1) \
        + obs["sys"].to_numpy()
    order = np.argsort(key, kind="stable")
    start, length = runs(key[order])
    back = np.empty(key.size, np.int32)
    back[order] = np.repeat(start + length, length) - 1 - np.arange(key.size)
    n_sys = np.empty(key.size, np.int32)
    n_sys[order] = np.repeat(length, length)
    return obs.with_columns(back=pl.Series(back), n_sys=pl.Series(n_sys))


def _evidence_profiles(usable: pl.DataFrame, end: dt.datetime, names: list[str],
                       orders: dict[str, list[str]], config: SizeConfig
                       ) -> dict[int, list[SizePreference]]:
    """Per customer, their evidence (``usable`` as :func:`_with_recency` leaves it): the
    recency-weighted count of each (system, size, kind) in their last ``max_history``
    purchases per system, heaviest first within a system, at most ``max_evidence`` per system.
    """
    half_life_s = config.half_life_days * 86_400
    agg = (usable.lazy().filter(pl.col("back") < config.max_history)
           .group_by("user_idx", "sys", "pos", "kind")
           .agg(w=pl.lit(0.5).pow((pl.lit(end) - pl.col("ts")).dt.total_seconds()
                                  / half_life_s).sum())
           # the weight to 4 decimals, as stored; heaviest first by it, then by size and
           # kind: the order does not depend on the last bits of a sum, whose summation
           # order the group-by does not fix
           .with_columns(w4=(pl.col("w") * 1e4).round().cast(pl.Int64))
           .sort(["user_idx", "sys", "w4", "pos", "kind"],
                 descending=[False, False, True, False, False])
           .collect())
    if agg.height == 0:
        return {}
    user = agg["user_idx"].to_numpy()
    sys_, pos, kind = (agg[c].to_numpy().astype(np.int64) for c in ("sys", "pos", "kind"))
    start, length = runs(user.astype(np.int64) * len(names) + sys_)
    keep = (np.arange(user.size) - np.repeat(start, length)) < config.max_evidence
    if not keep.any():  # max_evidence < 1: no evidence at all
        return {}
    user, sys_, pos, kind = user[keep], sys_[keep], pos[keep], kind[keep]
    w4 = agg["w4"].to_numpy()[keep]
    # one SizePreference (frozen) per distinct (system, size, kind, weight), shared
    width = max(len(o) for o in orders.values())
    code = ((sys_ * width + pos) * len(KINDS) + kind) * (int(w4.max()) + 1) + w4
    distinct, first, which = np.unique(code, return_index=True, return_inverse=True)
    made = np.empty(distinct.size, dtype=object)
    for d, row in enumerate(first.tolist()):
        name = names[sys_[row]]
        made[d] = SizePreference(name, orders[name][pos[row]], KINDS[kind[row]],
                                 int(w4[row]) / 1e4)
    prefs = made[which]
    start, length = runs(user)
    return {u: prefs[a:a + n].tolist()
            for u, a, n in zip(user[start].tolist(), start.tolist(), length.tolist())}


def fit_sizes(data: CanonicalData, inter: Interactions,
              config: SizeConfig | None = None) -> SizeModel | None:
    """The size model of ``data`` (indexed as ``inter``); None when no purchase carries a size
    in an item with a size system (the bundle then has no size model)."""
    config = config or SizeConfig()
    obs, orders = observations(data, inter, config)
    if not orders:
        log.info("sizes: no sized purchases in items with a size system; no size model")
        return None
    names = list(orders)
    width = max(len(o) for o in orders.values())
    sys_index = {s: i for i, s in enumerate(names)}
    item_system = np.asarray([sys_index.get(s, -1) if s is not None else -1
                              for s in data.items["size_system"].to_list()], np.int16)
    offered = np.zeros((len(item_system), width), bool)
    positions = {s: {label: p for p, label in enumerate(orders[s])} for s in names}
    for i, (system, sizes) in enumerate(data.items.select("size_system", "sizes").iter_rows()):
        if system in positions and sizes:
            index = positions[system]
            offered[i, [index[x] for x in sizes if x in index]] = True
    rows0 = np.concatenate([[0], np.cumsum([len(KINDS) * len(orders[s]) for s in names])[:-1]])
    systems = [SizeSystemInfo(name=s, order=orders[s], row=int(r)) for s, r in zip(names, rows0)]
    cats, n_cats = inter.item_category.astype(np.int64), len(inter.categories)
    sys64 = item_system.astype(np.int64)

    start, end = obs["ts"].min(), obs["ts"].max()
    cut = start + (end - start) * (1 - config.holdout_fraction)
    weights, used = dict(DEFAULT_WEIGHTS), 0
    before = obs.filter(pl.col("ts") < cut)
    if before.height and end > start:
        targets = obs.filter((pl.col("ts") >= cut) & (pl.col("kind") == 0) & ~pl.col("gift"))
        if targets.height > config.max_holdout_rows:  # as fit_weights would sample them
            targets = targets.sample(config.max_holdout_rows, seed=config.seed)
        # the early evidence is read only for the customers of those targets
        early = _fit_core(before, cut, sys64, cats, n_cats, orders, config,
                          profile_users=targets["user_idx"].unique())
        info = SizeModelInfo(systems=systems, weights=weights)
        view = SizeView(info, inter.items, item_system=item_system, item_offered=offered,
                        item_prior=early.item_prior, item_offset=early.item_offset,
                        loglik=early.loglik)
        weights, used = fit_weights(view, early.profiles, targets, config)
    final = _fit_core(obs, end, sys64, cats, n_cats, orders, config)
    own = obs.filter(~pl.col("gift"))
    info = SizeModelInfo(
        systems=systems, weights=weights, min_confidence=config.min_confidence,
        live_weights=dict(config.live_weights),
        fitted={"purchases": obs.height, "probable_gifts": int(obs["gift"].sum()),
                "kept": int((own["kind"] == 0).sum()), "too_small": int((own["kind"] == 1).sum()),
                "too_large": int((own["kind"] == 2).sum()),
                "weights_fitted_on": used, "weights_holdout_from": cut.isoformat(),
                "items_running_small": int((final.item_offset >= 0.2).sum()),
                "items_running_large": int((final.item_offset <= -0.2).sum()),
                "config": msgspec.to_builtins(config)})
    log.info("sizes: %d systems, %d customers with evidence, weights %s (from %d held-out "
             "purchases)", len(names), len(final.profiles), weights, used)
    arrays = {"item_size_system": item_system, "item_size_offered": offered,
              "item_size_prior": final.item_prior, "item_fit_offset": final.item_offset,
              "size_loglik": final.loglik}
    return SizeModel(info=info, arrays=arrays, profiles=final.profiles)
