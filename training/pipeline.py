"""The training run laid out as named stages: index -> ALS -> item-item -> variants (together
:func:`fit`) -> popularity -> repurchase -> segments -> sizes -> candidates -> export (together
:func:`export`) -> gate -> profiles to Redis -> publish (the stages' bookkeeping:
:mod:`training.stages`).

``current`` is switched only after the bundle is committed, passed the optional gate and (when
Redis is configured) every batch profile has been written, so a failure or a refusal at any stage
leaves the serving bundle, and the profiles in Redis, untouched. A run stopped by
``KeyboardInterrupt`` (Ctrl-C; the CLI turns SIGTERM into one too) also removes the bundle it
wrote, unless it was already made current, and raises :class:`Stopped` saying what it removed.

:func:`fit` depends only on the fields in :data:`FIT_FIELDS`; :func:`export` reads the rest of
the config, so a tuning run fits once and exports many blends.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import polars as pl
import scipy.sparse as sp
from tqdm import tqdm

from artifacts import bundle as bundle_format
from artifacts.bundle import BundleManifest, BundleWriter
from artifacts.profiles import CANDIDATE_SOURCES, BatchProfile, ProfileRecord, Ranked
from training.candidates import SOURCES, SourceInputs, score_candidates
from training.config import TrainConfig
from training.data.schema import CanonicalData
from training.interactions import Interactions, build_interactions
from training.models import als, itemknn, repurchase
from training.models import homepage_lists, segments
from training.models.popularity import popularity, top_lists
from training.models.sizes import SizeConfig, fit_sizes
from training.models.variants import variant_similarity
from training.redis_push import PushCounts, push_profiles
from training.stages import Stages, Stopped, gc_paused, no_more_stops

log = logging.getLogger(__name__)
PROFILE_PART = 50_000
#: Config fields :func:`fit` reads; changing any other field needs only :func:`export`.
FIT_FIELDS = ("half_life_days", "returned_weight", "view_weight", "cart_weight", "itemknn",
              "bm25_k1", "bm25_b", "neighbours", "factors", "regularization", "alpha",
              "iterations", "seed", "variant_max_group")


@dataclass
class TrainResult:
    version: str
    path: Path
    manifest: BundleManifest
    published: bool
    profiles_pushed: int
    timings: dict[str, float] = field(default_factory=dict)
    refused: str | None = None
    """Why the gate refused to publish the bundle (None: not gated, or passed)."""
    profiles_erased: int = 0
    """Profiles not written to Redis: their customer is on the erasure list."""


@dataclass
class Fitted:
    """The fitted models of one run, before blending and export."""

    data: CanonicalData
    inter: Interactions
    factors: als.Factors
    index: faiss.Index
    similarity: object  # scipy CSR (items x items)
    neighbours: tuple[np.ndarray, np.ndarray, np.ndarray]  # idx, score, source
    variants: object  # scipy CSR (items x items)
    bought: object  # scipy CSR (users x items)
    timings: dict[str, float]


def _item_attributes(data: CanonicalData, inter: Interactions) -> dict[str, np.ndarray]:
    items = data.items
    n_markets = len(inter.markets)
    sold = np.ones((len(inter.items), n_markets), dtype=bool)
    restricted = items.with_row_index("row").filter(pl.col("markets").is_not_null())
    if n_markets and restricted.height:
        sold[restricted["row"].to_numpy()] = False
        exploded = restricted.select("row", "markets").explode("markets").drop_nulls("markets")
        cols = np.asarray([inter.markets.index(m) for m in exploded["markets"].to_list()], np.int64)
        sold[exploded["row"].to_numpy(), cols] = True
    return {
        "items": inter.items.to_array(),
        "item_category": inter.item_category,
        "item_markets": np.packbits(sold, axis=1, bitorder="little"),
        "item_sensitive": items["sensitive"].to_numpy(),
        "item_in_stock": items["in_stock"].to_numpy(),
        "item_price": items["price"].fill_null(np.nan).to_numpy().astype(np.float32),
        "item_list_price": items["list_price"].fill_null(np.nan).to_numpy().astype(np.float32),
        "_sold": sold,
    }


def _neighbours(inter: Interactions, factors: als.Factors, config: TrainConfig):
    """Co-purchase neighbours, topped up from ALS factor neighbours where co-purchase is thin."""
    k = config.neighbours
    sim = itemknn.item_similarity(inter.matrix, config)
    idx, score = itemknn.top_k_rows(sim, k)
    source = np.zeros_like(idx, dtype=np.uint8)
    filled = (idx >= 0).sum(axis=1)
    has_factors = np.linalg.norm(factors.items, axis=1) > 0
    need = np.flatnonzero((filled < k) & has_factors)
    if need.size:
        f_idx, f_score = als.factor_neighbours(factors.items, need, k)
        for row, item in enumerate(need):
            have = filled[item]
            extra = f_idx[row][~np.isin(f_idx[row], idx[item, :have]) & (f_idx[row] >= 0)]
            extra = extra[: k - have]
            idx[item, have:have + extra.size] = extra
            score[item, have:have + extra.size] = f_score[row][: extra.size]
            source[item, have:have + extra.size] = bundle_format.NEIGHBOUR_SOURCES.index("als")
    return sim, idx, score, source


def _recent_purchases(inter: Interactions, limit: int) -> pl.DataFrame:
    """Per user: distinct items bought, most recent first (capped), count and last date."""
    return (
        # purchases are in (customer, time) order: reversed, the latest come first
        inter.purchases.select("user_idx", "item_idx", "ts").reverse()
        .group_by("user_idx", maintain_order=True)
        .agg(items=pl.col("item_idx").unique(maintain_order=True).head(limit),
             n=pl.len(), last=pl.col("ts").max())
        .sort("user_idx")
    )


def _profiles(inter: Interactions, factors: als.Factors, blocks, history: pl.DataFrame,
              version: str, progress: bool, total: int) -> Iterator[ProfileRecord]:
    item_ids = inter.items.ids
    ids = np.asarray(item_ids, dtype=object)
    user_ids = inter.users.ids
    # the candidate sources as Ranked codes (what Ranked.pack maps them to)
    remap = np.asarray([CANDIDATE_SOURCES.index(name) for name in SOURCES], np.uint8)
    markets = np.asarray(inter.markets.ids + [None], dtype=object)  # -1 (unknown) -> None
    hist_items = history["items"].to_list()
    hist_n = history["n"].to_list()
    hist_last = [t.isoformat() for t in history["last"].to_list()]
    bar = tqdm(total=total, desc="profiles", unit="user", disable=not progress)
    for block in blocks:
        # whole-block conversions, then per customer a slice: rows are best first, so the
        # valid entries are a prefix; the columns are those Ranked.pack writes
        n_valid = (block.items >= 0).sum(axis=1).tolist()
        width = block.items.shape[1]
        candidates = ids[np.maximum(block.items, 0)].tolist()
        idx = np.ascontiguousarray(block.items, "<i4").tobytes()
        scores = np.round(block.scores.astype(np.float64), 5).astype("<f4").tobytes()
        codes = remap[block.sources].tobytes()
        market = markets[inter.user_market[block.users]].tolist()
        vectors = factors.users[block.users]
        for row, u in enumerate(block.users.tolist()):
            n = n_valid[row]
            at = row * width
            yield ProfileRecord(user_ids[u], BatchProfile(
                bundle_version=version,
                market=market[row],
                ranked=Ranked(ids="\n".join(candidates[row][:n]).encode(),
                              idx=idx[4 * at:4 * (at + n)], scores=scores[4 * at:4 * (at + n)],
                              sources=codes[at:at + n]),
                purchased=[item_ids[i] for i in hist_items[u]],
                factors=vectors[row].tobytes(),
                n_purchases=hist_n[u],
                last_purchase=hist_last[u],
            ))
        bar.update(len(block.users))
    bar.close()


def fit(data: CanonicalData, config: TrainConfig, *, progress: bool = True,
        stage: Stages | None = None, consume: bool = False) -> Fitted:
    """Index ``data`` and fit ALS, item-item and variants (the expensive, blend-free part).

    ``consume=True`` hands ``data`` over: once indexed, its purchases and events tables are
    emptied in place (zero rows, same columns), so a run does not hold the raw tables, with
    their string ids, next to the indexed ones (at 20M purchases about 2 GiB). Every later
    stage reads only its items and customers.
    """
    stage = stage or Stages()
    with stage("index"):
        inter = build_interactions(data, config)
        if consume:
            data.purchases = data.purchases.clear()
            data.events = None if data.events is None else data.events.clear()
        log.info("%d purchases, %d customers, %d items, %d markets, %s .. %s",
                 inter.purchases.height, len(inter.users), len(inter.items), len(inter.markets),
                 inter.start.date(), inter.end.date())
        bought = sp.csr_matrix(
            (np.ones(inter.purchases.height, np.float32),
             (inter.purchases["user_idx"].to_numpy(), inter.purchases["item_idx"].to_numpy())),
            shape=inter.matrix.shape)
        bought.sum_duplicates()
    with stage("als"):
        factors = als.fit_als(inter.matrix, config, show_progress=progress)
        index = als.build_index(factors.items)
    with stage("item_item"):
        sim, nb_idx, nb_score, nb_source = _neighbours(inter, factors, config)
        variants = variant_similarity(data.items["name"].to_list(), inter.item_category,
                                      config.variant_max_group)
    return Fitted(data=data, inter=inter, factors=factors, index=index, similarity=sim,
                  neighbours=(nb_idx, nb_score, nb_source), variants=variants, bought=bought,
                  timings=stage.timings)


def export(fitted: Fitted, config: TrainConfig, out_root: Path | str, *,
           version: str | None = None, profile_users: Collection[str] | None = None,
           metrics: dict | None = None, progress: bool = True,
           stage: Stages | None = None,
           size_config: SizeConfig | None = None) -> tuple[Path, BundleManifest]:
    """Blend the fitted models into candidates and commit a bundle under ``out_root``
    (never made current here). ``profile_users`` limits the batch profiles to those customers
    (unknown ids are ignored): an evaluation needs only its test customers'."""
    stage = stage or Stages()
    inter, data = fitted.inter, fitted.data
    with stage("popularity"):
        attrs = _item_attributes(data, inter)
        sold = attrs.pop("_sold")
        in_stock = attrs["item_in_stock"]
        sold_in = np.vstack([np.ones(len(inter.items), bool), sold.T]) & in_stock
        pop = popularity(inter.purchases, len(inter.items), inter.markets.ids, inter.end,
                         config.popularity_days, config.popularity_half_life_days)
        pop_idx, pop_score = top_lists(pop, sold_in, config.popular_per_market)
        since = inter.end - dt.timedelta(days=config.active_days)
        active = np.zeros(len(inter.items), dtype=bool)
        active[inter.purchases.filter(pl.col("ts") > since)["item_idx"].unique().to_numpy()] = True
        active &= in_stock
    with stage("repurchase"):
        rep = repurchase.fit_repurchase(inter.purchases, inter.item_category,
                                        len(inter.categories), config)
        rep_scores = repurchase.repurchase_scores(inter.purchases, inter.matrix.shape, inter.end,
                                                  rep, config.repurchase_half_life_days)
    with stage("segments"):
        seg = segments.fit_segments(data, inter, config)
        lists = homepage_lists.market_lists(data, inter, pop, sold_in, config.homepage)
        seg.summary["homepage_lists"] = homepage_lists.describe(lists)
    with stage("sizes"):
        size_model = fit_sizes(data, inter, size_config)
    with stage("history"):
        history = _recent_purchases(inter, config.history_items)
    users = None
    if profile_users is not None:
        found = (inter.users.index(u) for u in profile_users)
        users = np.asarray(sorted({i for i in found if i is not None}), dtype=np.int64)
    n_profiles = len(inter.users) if users is None else int(users.size)

    with BundleWriter(out_root, version) as writer, stage("candidates_and_export"):
        for name, array in attrs.items():
            writer.add_array(name, array)
        writer.add_array("item_repurchasable", rep.repurchasable)
        for name, array in lists.items():
            writer.add_array(name, array)
        nb_idx, nb_score, nb_source = fitted.neighbours
        writer.add_array("neighbours_idx", nb_idx)
        writer.add_array("neighbours_score", nb_score)
        writer.add_array("neighbours_source", nb_source)
        writer.add_array("popular_idx", pop_idx)
        writer.add_array("popular_score", pop_score)
        writer.add_array("item_factors", fitted.factors.items)
        writer.add_faiss("item_factors.faiss", fitted.index)
        for name, array in (size_model.arrays if size_model is not None else {}).items():
            writer.add_array(name, array)
        inputs = SourceInputs(
            weights=inter.matrix, bought=fitted.bought, repurchase=rep_scores,
            repurchasable=rep.repurchasable, similarity=fitted.similarity,
            variants=fitted.variants, user_factors=fitted.factors.users,
            item_factors=fitted.factors.items, popularity=pop, sold_in=sold_in,
            user_market=inter.user_market, n_purchases=history["n"].to_numpy(), active=active)
        blocks = score_candidates(inputs, config, users)
        part: list[ProfileRecord] = []
        for record in _profiles(inter, fitted.factors, blocks, history, writer.version, progress,
                                n_profiles):
            if size_model is not None:
                size_model.annotate(record, inter.users)
            part.append(seg.annotate(record))
            if len(part) >= PROFILE_PART:
                writer.add_profiles(part)
                part = []
        if part or n_profiles == 0:
            writer.add_profiles(part)
        manifest = BundleManifest(
            schema_version=bundle_format.SCHEMA_VERSION, version=writer.version,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            dataset=data.name, data_start=inter.start.isoformat(), data_end=inter.end.isoformat(),
            counts={"purchases": inter.purchases.height, "users": len(inter.users),
                    "items": len(inter.items), "active_items": int(active.sum()),
                    "markets": len(inter.markets), "profiles": n_profiles,
                    "repurchasable_items": int(rep.repurchasable.sum()),
                    "dropped_unknown_items": inter.dropped_unknown_items},
            markets=inter.markets.ids, categories=inter.categories.ids,
            config=config.to_dict(), metrics=metrics or {}, timings=stage.timings,
            repurchase=repurchase.summary(rep, inter.categories.ids),
            segments=seg.summary, homepage=config.to_dict()["homepage"],
            sizes=size_model.manifest() if size_model is not None else {},
        )
        path = writer.commit(manifest)
    return path, manifest


def train(data: CanonicalData, config: TrainConfig, out_root: Path | str, *,
          redis_url: str | None = None, redis_prefix: str = "reco", publish: bool = True,
          progress: bool = True, version: str | None = None,
          profile_users: Collection[str] | None = None, metrics: dict | None = None,
          gate: Callable[[BundleManifest], str | None] | None = None,
          stages: Stages | None = None, consume: bool = False) -> TrainResult:
    """Fit every model on ``data``, write a bundle under ``out_root`` and (optionally) batch
    profiles to Redis, then make the bundle ``current`` when ``publish`` is true.

    ``metrics`` go into the manifest as the evaluation figures of this run. ``gate`` is called
    with the committed bundle's manifest before anything is written to Redis; when it returns a
    reason, nothing is pushed or published and the result carries that reason in ``refused``.
    Customers on the erasure list in Redis when the profiles are written (also those erased
    while this run trained) get no profile there (:func:`training.redis_push.push_profiles`).
    ``stages`` times (and may watch) every stage; a fresh :class:`Stages` by default.
    ``consume=True`` empties ``data``'s purchases and events once indexed (see :func:`fit`):
    for a caller that does not read them afterwards.

    A ``KeyboardInterrupt`` at any point removes the bundle this run wrote (its temporary
    directory, or the committed bundle unless it is already ``current``) and raises
    :class:`Stopped`. Profiles already written to Redis stay: they are keyed per customer, so
    they replaced that customer's previous profile, and deleting them would leave those
    customers with none; they carry this run's ``bundle_version`` and the service reads them
    by item id against whichever bundle it serves.
    """
    stage = stages or Stages()
    version = version or bundle_format.new_version()
    counts = PushCounts()
    ours = not (Path(out_root) / version).exists()  # a bundle of that version is not ours
    try:
        return _train(data, config, out_root, version, counts, stage, redis_url=redis_url,
                      redis_prefix=redis_prefix, publish=publish, progress=progress,
                      profile_users=profile_users, metrics=metrics, gate=gate, consume=consume)
    except KeyboardInterrupt as exc:  # the writer has removed its folder; a committed bundle:
        current = bundle_format.is_current(out_root, version)
        removed = bundle_format.discard(out_root, version) if ours else None
        raise Stopped(version, stage.where(), removed, current, counts.written) from exc


def _train(data: CanonicalData, config: TrainConfig, out_root: Path | str, version: str,
           counts: PushCounts, stage: Stages, *, redis_url: str | None, redis_prefix: str,
           publish: bool, progress: bool, profile_users: Collection[str] | None,
           metrics: dict | None, gate: Callable[[BundleManifest], str | None] | None,
           consume: bool) -> TrainResult:
    with gc_paused():
        fitted = fit(data, config, progress=progress, stage=stage, consume=consume)
        path, manifest = export(fitted, config, out_root, version=version,
                                profile_users=profile_users, metrics=metrics,
                                progress=progress, stage=stage)
    refused = gate(manifest) if gate is not None else None
    if refused:
        log.warning("bundle %s not published: %s", version, refused)
        return TrainResult(version=version, path=path, manifest=manifest, published=False,
                           profiles_pushed=0, timings=stage.timings, refused=refused)
    if redis_url:
        with stage("profiles_to_redis"), gc_paused():
            # committed and checksummed moments ago by this process: no second hashing pass
            reader = bundle_format.Bundle.open(path, verify=False)
            push_profiles(reader.profile_records(), redis_url, prefix=redis_prefix,
                          batch=config.redis_batch, total=manifest.counts["profiles"],
                          progress=progress, counts=counts)
        if counts.erased:
            log.info("%d profile(s) not written to Redis: the customer is on the erasure list",
                     counts.erased)
    if publish:
        no_more_stops()  # the run completes from here: a stop would leave current switched
        with stage("publish"):
            bundle_format.publish(out_root, version)
        log.info("bundle %s is now current", version)
    return TrainResult(version=version, path=path, manifest=manifest, published=publish,
                       profiles_pushed=counts.written, timings=stage.timings,
                       profiles_erased=counts.erased)
