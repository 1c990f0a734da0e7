"""Customer segments: recency/frequency/monetary scores and behaviour segments, per customer.

Computed from the training purchases as of the end of the data, with the thresholds of
:class:`~training.config.TrainConfig` (which the manifest records, so a bundle says what rules
made its segments). A customer can be in several segments; each profile carries its segment
names (:data:`artifacts.homepage.SEGMENTS`) and its scores as ``rfm:<R><F><M>``.

* **orders**: distinct purchase times of a customer (one basket, one order).
* **RFM scores** 1..``rfm_bins``: quantiles over the customers with purchases, by days since the
  last order (recent = high), orders and spend (price x quantity of the kept purchases, returns
  excluded). Ties share a score: a score is ``1 + floor(bins * share of customers strictly
  worse)``.
* **discount_hunter**: at least ``discount_share`` of their priced purchases were paid at least
  ``discount_min_markdown`` below the item's usual (list) price.
* **trend_seeker**: at least ``trend_share`` of their purchases came within ``trend_days`` of
  the item first appearing (its first-seen date, else its first sale in the data).
* Both shares need ``segment_min_purchases`` purchases, and must reach ``segment_min_lift``
  times the shop-wide share: where everything sells on sale, or the data holds only a week so
  every item looks new, nobody stands out and nobody is put in the segment.
* **new**: at most ``new_max_orders`` orders, the first no more than ``new_max_days`` ago
  (customers of the customer table without any order are new too, but have no profile: the
  service serves them like an unknown visitor).
* **vip**: spend in the top ``vip_top_spend`` share and orders in the top ``vip_top_orders``
  share of customers (top spenders who are also frequent buyers).
* **lapsing**: no order for longer than ``lapsing_gap_factor`` x their usual gap between orders
  (at least ``lapsing_min_days``) when they have ``lapsing_min_gap_orders`` orders or more;
  otherwise longer than ``lapsing_days``. The usual gap is the mean (first to last order over
  orders - 1): the median of a few gaps is pulled down by size exchanges and quick re-orders,
  and most customers' gaps are long-tailed, so the median flagged steady customers.

Consent flags come from the customer table (``None`` where it does not say).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from artifacts.homepage_rules import SEGMENTS
from artifacts.profiles import ProfileRecord
from artifacts.vocabulary import Vocabulary
from training.config import TrainConfig
from training.data.schema import CanonicalData
from training.interactions import Interactions

log = logging.getLogger(__name__)
DAY_S = 86_400.0
#: TrainConfig fields that define the segments; the manifest records their values.
RULE_FIELDS = ("rfm_bins", "segment_min_purchases", "segment_min_lift", "discount_min_markdown",
               "discount_share", "trend_days", "trend_share", "new_max_orders", "new_max_days",
               "vip_top_spend", "vip_top_orders", "lapsing_days", "lapsing_gap_factor",
               "lapsing_min_gap_orders", "lapsing_min_days")


@dataclass
class Segments:
    """Per user index of the trainer's user vocabulary: segment labels and consent flags."""

    users: Vocabulary
    labels: list[list[str]]
    consent_personalisation: list[bool | None]
    consent_sensitive: list[bool | None]
    summary: dict

    def annotate(self, record: ProfileRecord) -> ProfileRecord:
        """Fill the record's ``segments`` and consent fields in place (and return it)."""
        u = self.users.index(record.user_id)
        if u is not None:
            record.profile.segments = self.labels[u]
            record.profile.consent_personalisation = self.consent_personalisation[u]
            record.profile.consent_sensitive = self.consent_sensitive[u]
        return record


def scores(values: np.ndarray, bins: int) -> np.ndarray:
    """1..bins by the share of values strictly below each (higher value, higher score)."""
    below = np.searchsorted(np.sort(values), values, side="left")
    return np.minimum(bins, 1 + np.floor(bins * below / max(len(values), 1))).astype(np.int64)


def share_below(values: np.ndarray) -> np.ndarray:
    """Per value, the share of values strictly below it (ties share the lowest)."""
    return np.searchsorted(np.sort(values), values, side="left") / max(len(values), 1)


def _item_facts(data: CanonicalData, inter: Interactions) -> pl.DataFrame:
    """Per item index: usual price and first-seen date, falling back to the purchases."""
    sold = inter.purchases.group_by("item_idx").agg(
        max_price=pl.col("price").max(), first_sale=pl.col("ts").min())
    return (data.items.select("list_price", "first_seen").with_row_index("item_idx")
            .with_columns(pl.col("item_idx").cast(pl.Int32))
            .join(sold, on="item_idx", how="left")
            .select("item_idx", usual=pl.coalesce("list_price", "max_price"),
                    first_seen=pl.coalesce("first_seen", "first_sale")))


def _per_user(data: CanonicalData, inter: Interactions, config: TrainConfig) -> pl.DataFrame:
    end = inter.end
    rows = inter.purchases.select(
        "user_idx", "item_idx", "ts", "price", "quantity", "returned",
    ).join(_item_facts(data, inter), on="item_idx", how="left").with_columns(
        priced=pl.col("price").is_not_null() & (pl.col("usual") > 0),
        discounted=pl.col("price") < pl.col("usual") * (1 - config.discount_min_markdown),
        dated=pl.col("first_seen").is_not_null(),
        fresh=(pl.col("ts") - pl.col("first_seen")).dt.total_seconds()
        <= config.trend_days * DAY_S,
        kept_price=pl.when(pl.col("returned").fill_null(False)).then(0.0)
        .otherwise(pl.col("price").fill_null(0.0) * pl.col("quantity").clip(lower_bound=1)),
    )
    per_user = rows.group_by("user_idx").agg(
        priced=pl.col("priced").sum(),
        discounted=(pl.col("priced") & pl.col("discounted").fill_null(False)).sum(),
        dated=pl.col("dated").sum(),
        fresh=(pl.col("dated") & pl.col("fresh").fill_null(False)).sum(),
        spend=pl.col("kept_price").sum(),
    )
    orders = (inter.purchases.select("user_idx", "ts").unique().sort("user_idx", "ts")
              .group_by("user_idx").agg(
                  orders=pl.len(), first=pl.col("ts").min(), last=pl.col("ts").max())
              .with_columns(gap=pl.when(pl.col("orders") > 1).then(
                  (pl.col("last") - pl.col("first")).dt.total_seconds()
                  / DAY_S / (pl.col("orders") - 1))))
    out = pl.DataFrame({"user_idx": np.arange(len(inter.users), dtype=np.int32)})
    return (out.join(per_user, on="user_idx", how="left").join(orders, on="user_idx", how="left")
            .with_columns(
                recency=(pl.lit(end) - pl.col("last")).dt.total_seconds() / DAY_S,
                age=(pl.lit(end) - pl.col("first")).dt.total_seconds() / DAY_S)
            .sort("user_idx"))


def fit_segments(data: CanonicalData, inter: Interactions, config: TrainConfig) -> Segments:
    """Segments of every customer in ``inter.users`` (see the module docstring)."""
    u = _per_user(data, inter, config)

    def col(name: str) -> np.ndarray:
        return u[name].fill_null(0).to_numpy().astype(np.float64)

    priced, discounted, dated, fresh = col("priced"), col("discounted"), col("dated"), col("fresh")
    orders, spend, recency, age = col("orders"), col("spend"), col("recency"), col("age")
    gap = u["gap"].fill_null(np.nan).to_numpy().astype(np.float64)
    shop_discount = discounted.sum() / max(priced.sum(), 1.0)
    shop_fresh = fresh.sum() / max(dated.sum(), 1.0)
    discount_share = discounted / np.maximum(priced, 1.0)
    fresh_share = fresh / np.maximum(dated, 1.0)
    lift = config.segment_min_lift
    flags = {
        "vip": ((share_below(spend) >= 1 - config.vip_top_spend)
                & (share_below(orders) >= 1 - config.vip_top_orders)),
        "discount_hunter": ((priced >= config.segment_min_purchases)
                            & (discount_share >= config.discount_share)
                            & (discount_share >= lift * shop_discount)),
        "trend_seeker": ((dated >= config.segment_min_purchases)
                         & (fresh_share >= config.trend_share)
                         & (fresh_share >= lift * shop_fresh)),
        "new": (orders <= config.new_max_orders) & (age <= config.new_max_days),
    }
    usual_gap = orders >= config.lapsing_min_gap_orders
    limit = np.where(usual_gap & np.isfinite(gap),
                     np.maximum(config.lapsing_min_days, config.lapsing_gap_factor
                                * np.nan_to_num(gap)),
                     config.lapsing_days)
    flags["lapsing"] = recency > limit
    assert tuple(flags) == SEGMENTS
    bins = config.rfm_bins
    rfm = np.stack([scores(-recency, bins), scores(orders, bins), scores(spend, bins)], axis=1)
    member = np.stack([flags[s] for s in SEGMENTS], axis=1)
    labels = _labels(member, rfm)

    consent_p, consent_s, without_orders = _consent(data, inter.users)
    sizes = {s: int(flags[s].sum()) for s in SEGMENTS}
    summary = {
        "rules": {name: getattr(config, name) for name in RULE_FIELDS},
        "customers": len(inter.users),
        "sizes": sizes,
        "in_no_segment": int((~member.any(axis=1)).sum()),
        "customers_without_orders": without_orders,
        "shop_discount_share": round(float(shop_discount), 5),
        "shop_trend_share": round(float(shop_fresh), 5),
        "rfm_counts": {axis: np.bincount(rfm[:, k], minlength=bins + 1)[1:].tolist()
                       for k, axis in enumerate(("recency", "frequency", "monetary"))},
    }
    log.info("segments of %d customers: %s (none: %d; %d customers without orders)",
             len(inter.users), ", ".join(f"{k} {v}" for k, v in sizes.items()),
             summary["in_no_segment"], without_orders)
    return Segments(inter.users, labels, consent_p, consent_s, summary)


def _labels(member: np.ndarray, rfm: np.ndarray) -> list[list[str]]:
    """Per user: the names of its segments (``member`` columns in SEGMENTS order), then
    ``rfm:<R><F><M>``. Built once per distinct combination, then copied per user."""
    code = (member.astype(np.int64) << np.arange(member.shape[1])).sum(axis=1)
    code = ((code * 100 + rfm[:, 0]) * 100 + rfm[:, 1]) * 100 + rfm[:, 2]
    combos, inverse = np.unique(code, return_inverse=True)
    first = np.zeros(combos.size, np.int64)
    first[inverse[::-1]] = np.arange(code.size)[::-1]  # a user of each combination
    names = [[SEGMENTS[k] for k in np.flatnonzero(member[u])]
             + [f"rfm:{rfm[u, 0]}{rfm[u, 1]}{rfm[u, 2]}"] for u in first.tolist()]
    return [list(names[c]) for c in inverse.tolist()]


def _consent(data: CanonicalData, users: Vocabulary
             ) -> tuple[list[bool | None], list[bool | None], int]:
    """Consent flags per user index from the customer table, and how many customers in it
    never ordered."""
    personalisation: list[bool | None] = [None] * len(users)
    sensitive: list[bool | None] = [None] * len(users)
    if data.customers is None:
        return personalisation, sensitive, 0
    table = data.customers.select("user_id", "consent_personalisation", "consent_sensitive")
    index = pl.DataFrame({"user_id": pl.Series(users.ids, dtype=pl.String),
                          "u": np.arange(len(users), dtype=np.int64)})
    known = table.join(index, on="user_id", how="inner")
    without = table.height - known.height
    # duplicate customer rows: the last one wins, as row by row did
    known = known.with_row_index("row").sort("row").unique("u", keep="last")
    rows = known["u"].to_list()
    for u, p, s in zip(rows, known["consent_personalisation"].to_list(),
                       known["consent_sensitive"].to_list()):
        personalisation[u], sensitive[u] = p, s
    return personalisation, sensitive, without


def describe(summary: dict) -> str:
    """One line of segment sizes for the trainer's output."""
    sizes = summary.get("sizes", {})
    return (", ".join(f"{name} {count:,}" for name, count in sizes.items())
            + f"; in none {summary.get('in_no_segment', 0):,}"
            + f"; without orders (no profile) {summary.get('customers_without_orders', 0):,}")
