"""The training run laid out as named stages: index -> item-item -> ALS -> popularity ->
candidates -> export -> profiles to Redis -> publish.

``current`` is switched only after the bundle is committed and (when Redis is configured) every
batch profile has been written, so a failure at any stage leaves the serving bundle untouched.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from tqdm import tqdm

from artifacts import bundle as bundle_format
from artifacts.bundle import BundleManifest, BundleWriter
from artifacts.profiles import BatchProfile, ProfileRecord
from training.candidates import SOURCES, score_candidates
from training.config import TrainConfig
from training.data.schema import CanonicalData
from training.interactions import Interactions, build_interactions
from training.models import als, itemknn
from training.models.popularity import popularity, top_lists
from training.redis_push import push_profiles

log = logging.getLogger(__name__)
PROFILE_PART = 50_000


@dataclass
class TrainResult:
    version: str
    path: Path
    manifest: BundleManifest
    published: bool
    profiles_pushed: int
    timings: dict[str, float] = field(default_factory=dict)


class _Stages:
    """Logs and times each named stage of a run."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        log.info("%s ...", name)
        started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - started, 3)
        log.info("%s done in %.2f s", name, self.timings[name])


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
        inter.purchases.sort("ts", descending=True)
        .group_by("user_idx", maintain_order=True)
        .agg(items=pl.col("item_idx").unique(maintain_order=True).head(limit),
             n=pl.len(), last=pl.col("ts").max())
        .sort("user_idx")
    )


def _profiles(inter: Interactions, factors: als.Factors, blocks, history: pl.DataFrame,
              version: str, progress: bool) -> Iterator[ProfileRecord]:
    ids = inter.items.ids
    markets = inter.markets.ids
    hist_items = history["items"].to_list()
    hist_n = history["n"].to_list()
    hist_last = [t.isoformat() for t in history["last"].to_list()]
    bar = tqdm(total=len(inter.users), desc="profiles", unit="user", disable=not progress)
    for block in blocks:
        scores = np.round(block.scores, 5).astype(np.float64)
        for row, u in enumerate(block.users.tolist()):
            valid = block.items[row] >= 0
            m = int(inter.user_market[u])
            yield ProfileRecord(inter.users.id(u), BatchProfile(
                bundle_version=version,
                market=markets[m] if m >= 0 else None,
                candidates=[ids[i] for i in block.items[row][valid].tolist()],
                scores=scores[row][valid].tolist(),
                sources=[SOURCES[s] for s in block.sources[row][valid].tolist()],
                purchased=[ids[i] for i in hist_items[u]],
                factors=factors.users[u].tobytes(),
                n_purchases=hist_n[u],
                last_purchase=hist_last[u],
            ))
        bar.update(len(block.users))
    bar.close()


def train(data: CanonicalData, config: TrainConfig, out_root: Path | str, *,
          redis_url: str | None = None, redis_prefix: str = "reco", publish: bool = True,
          progress: bool = True, version: str | None = None) -> TrainResult:
    """Fit every model on ``data``, write a bundle under ``out_root`` and (optionally) batch
    profiles to Redis, then make the bundle ``current`` when ``publish`` is true."""
    stage = _Stages()
    with stage("index"):
        inter = build_interactions(data, config)
        log.info("%d purchases, %d customers, %d items, %d markets, %s .. %s",
                 inter.purchases.height, len(inter.users), len(inter.items), len(inter.markets),
                 inter.start.date(), inter.end.date())
    with stage("als"):
        factors = als.fit_als(inter.matrix, config, show_progress=progress)
        index = als.build_index(factors.items)
    with stage("item_item"):
        sim, nb_idx, nb_score, nb_source = _neighbours(inter, factors, config)
    with stage("popularity"):
        attrs = _item_attributes(data, inter)
        sold = attrs.pop("_sold")
        in_stock = attrs["item_in_stock"]
        sold_in = np.vstack([np.ones(len(inter.items), bool), sold.T]) & in_stock
        pop = popularity(inter.purchases, len(inter.items), inter.markets.ids, inter.end,
                         config.popularity_days, config.half_life_days)
        pop_idx, pop_score = top_lists(pop, sold_in, config.popular_per_market)
        since = inter.end - dt.timedelta(days=config.active_days)
        active = np.zeros(len(inter.items), dtype=bool)
        active[inter.purchases.filter(pl.col("ts") > since)["item_idx"].unique().to_numpy()] = True
        active &= in_stock
    bought = sp.csr_matrix(
        (np.ones(inter.purchases.height, np.float32),
         (inter.purchases["user_idx"].to_numpy(), inter.purchases["item_idx"].to_numpy())),
        shape=inter.matrix.shape)
    history = _recent_purchases(inter, config.history_items)

    with BundleWriter(out_root, version) as writer, stage("candidates_and_export"):
        for name, array in attrs.items():
            writer.add_array(name, array)
        writer.add_array("neighbours_idx", nb_idx)
        writer.add_array("neighbours_score", nb_score)
        writer.add_array("neighbours_source", nb_source)
        writer.add_array("popular_idx", pop_idx)
        writer.add_array("popular_score", pop_score)
        writer.add_array("item_factors", factors.items)
        writer.add_faiss("item_factors.faiss", index)
        blocks = score_candidates(
            weights=inter.matrix, bought=bought, similarity=sim, user_factors=factors.users,
            item_factors=factors.items, popularity=pop, sold_in=sold_in,
            user_market=inter.user_market, active=active, config=config)
        part: list[ProfileRecord] = []
        for record in _profiles(inter, factors, blocks, history, writer.version, progress):
            part.append(record)
            if len(part) >= PROFILE_PART:
                writer.add_profiles(part)
                part = []
        if part:
            writer.add_profiles(part)
        manifest = BundleManifest(
            schema_version=bundle_format.SCHEMA_VERSION, version=writer.version,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            dataset=data.name, data_start=inter.start.isoformat(), data_end=inter.end.isoformat(),
            counts={"purchases": inter.purchases.height, "users": len(inter.users),
                    "items": len(inter.items), "active_items": int(active.sum()),
                    "markets": len(inter.markets), "profiles": len(inter.users),
                    "dropped_unknown_items": inter.dropped_unknown_items},
            markets=inter.markets.ids, categories=inter.categories.ids,
            config=config.to_dict(), timings=stage.timings,
        )
        path = writer.commit(manifest)

    pushed = 0
    if redis_url:
        with stage("profiles_to_redis"):
            reader = bundle_format.Bundle.open(path)
            pushed = push_profiles(reader.profile_records(), redis_url, prefix=redis_prefix,
                                   batch=config.redis_batch, total=len(inter.users),
                                   progress=progress)
    if publish:
        bundle_format.publish(out_root, writer.version)
        log.info("bundle %s is now current", writer.version)
    return TrainResult(version=writer.version, path=path, manifest=manifest, published=publish,
                       profiles_pushed=pushed, timings=stage.timings)
