"""Typed trainer configuration: one Struct, read once, passed explicitly.

Unknown keys are rejected so a typo in a config file fails loudly instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from artifacts.homepage_rules import HomepageRules


class ConfigError(msgspec.ValidationError):
    """A config file that cannot be read or holds what TrainConfig does not accept (a
    ``msgspec.ValidationError``, as an invalid value has always been)."""

Positive = Annotated[int, Meta(ge=1)]
NonNegative = Annotated[float, Meta(ge=0)]


class TrainConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every knob of a training run, with its default and what it does.

    The defaults of the blend, recency, repurchase, popularity and ALS fields were chosen by
    ``python -m training.evaluation.tune`` (a printed coordinate search, two passes) on
    validation splits earlier than the reported test splits: H&M trained before 2020-09-20 and
    validated on 2020-09-20, Online Retail trained before 2011-09-01 and validated on September
    2011. The objective is the served MAP@12 over the best baseline's, averaged over both
    datasets and over all customers and those with history: 0.987 with the previous defaults,
    1.147 for the search's best, 1.145 for these. Two fields deliberately differ from the
    search's best, at a cost within noise on validation: a week of popularity with a half-day
    half-life instead of one day (a one-day window leaves a small shop's market lists short),
    and ``repurchase_min_ratio`` 0.25 instead of 0 (so rarely repeated categories keep the
    no-repeat rule). The run's log stays in benchmarks/out/quality/ (not committed); the test
    splits were only measured afterwards (benchmarks/RESULTS.md).
    """

    # -- interactions ------------------------------------------------------------------------
    half_life_days: Annotated[float, Meta(gt=0)] = 10.0
    """Purchases lose half their weight every this many days before the end of the data
    (the weights ALS, item-item and the personal sources are built from). Tuned: 10 (tried
    3, 10, 30, 100)."""
    returned_weight: NonNegative = 0.0
    """Weight of a purchase that was returned (0 drops it: a return says "not for me")."""
    view_weight: NonNegative = 0.0
    cart_weight: NonNegative = 0.0
    """Weights of a view and of an add-to-cart event next to a purchase's 1 in the
    personal sources, decayed like purchases; only customers who also bought are indexed.
    0 leaves events out (the public datasets have none)."""

    # -- item-to-item ("customers who bought this also bought") -------------------------------
    itemknn: Literal["bm25", "cosine", "tfidf"] = "tfidf"
    """Normalisation of co-purchase counts so popular items do not swamp every list.
    Tuned: TF-IDF ahead of cosine and BM25 (k1 1.2, b 0.75) in the blend on both datasets."""
    bm25_k1: NonNegative = 1.2
    bm25_b: Annotated[float, Meta(ge=0, le=1)] = 0.75
    neighbours: Annotated[int, Meta(ge=1, le=500)] = 50
    """Neighbours stored per item; items with too few co-purchases are filled from ALS."""

    # -- collaborative filtering (implicit ALS) ---------------------------------------------------
    factors: Annotated[int, Meta(ge=2, le=1024)] = 64
    regularization: NonNegative = 0.2
    alpha: Annotated[float, Meta(gt=0)] = 20.0
    """Confidence scale of the decayed weights. Tuned with factors (32, 64, 128) and
    regularization (0.01, 0.05, 0.2): ALS is a minor part of the blend on both datasets."""
    iterations: Annotated[int, Meta(ge=1, le=200)] = 15
    seed: int = 42

    # -- popularity -----------------------------------------------------------------------------
    popularity_days: Annotated[int, Meta(ge=1)] = 7
    """Window before the last purchase that "popular now" counts purchases in."""
    popularity_half_life_days: Annotated[float, Meta(gt=0)] = 0.5
    """Decay of a purchase's weight inside that window ("trending" when short). Tuned with the
    window (1, 3, 7, 14 days; half-lives 0.5, 1, 3, 30): what sold in the last day predicts
    best what new customers buy next; the week behind it keeps the lists full."""
    popular_per_market: Annotated[int, Meta(ge=1, le=5000)] = 200

    # -- precomputed "for you" candidates in each batch profile ---------------------------------
    candidates: Annotated[int, Meta(ge=1, le=1000)] = 100
    active_days: Annotated[int, Meta(ge=1)] = 90
    """Only items bought in this window before the end of the data are candidates."""
    weight_itemknn: NonNegative = 1.0
    weight_als: NonNegative = 1.0
    weight_popularity: NonNegative = 1.0
    """Tuned (tried 0.03, 0.1, 0.3, 1): popular now orders the non-bought part of the list."""
    weight_repurchase: NonNegative = 10.0
    """Weight of "buy again" (repurchasable items the customer bought, scaled per customer).
    Tuned (tried 1, 3, 10, 30): repeat purchases lead the list on both datasets."""
    weight_variant: NonNegative = 1.0
    """Weight of other variants (same name and category: colours, cuts) of items bought.
    Tuned (tried 0, 0.3, 1, 3); helps on H&M, no effect where names are unique."""
    history_shrink: NonNegative = 0.0
    """How much to trust short histories: the personal sources (item-item, variants, ALS) are
    multiplied by n / (n + history_shrink) for a customer with n purchases (0: trust fully).
    Tuned: 0 (tried 0, 2, 5, 20): shrinking short histories towards popularity lost on both
    datasets, where even one purchase says more than what is popular."""
    als_search: Literal["auto", "exact", "hnsw"] = "auto"
    """How each customer's best ALS items are found for the candidate pool
    (training/candidates.py): ``exact`` (brute force), ``hnsw`` (a FAISS HNSW graph, recall
    logged), ``auto``: exact up to 1e10 customers x active items, HNSW above."""
    variant_max_group: Annotated[int, Meta(ge=2, le=1000)] = 50
    """Names shared by more items than this are generic ("T-shirt"), not one product."""

    # -- repurchase ("buy again") -----------------------------------------------------------------
    repurchase_half_life_days: Annotated[float, Meta(gt=0)] = 100.0
    """Decay of a past purchase in the buy-again score. Tuned (tried 1, 3, 10, 30, 100): how
    often an item was bought matters more than how recently (Online Retail's re-orders)."""
    repurchase_prior: NonNegative = 100.0
    """Pseudo-count shrinking an item's repurchase rate towards its category's (and a
    category's towards the shop's): items with few buyers borrow their category's rate.
    Tuned (tried 0, 5, 20, 100): strong shrinkage, single items' rates are noisy."""
    repurchase_min_ratio: NonNegative = 0.25
    """An item is repurchasable when its learned rate (share of its buyers who bought it again
    at a later time) is at least this fraction of the shop-wide rate... Tried 0, 0.25, 0.5, 1:
    0 and 0.25 score the same on validation, 0.5 loses 5% on H&M. At 0.25, H&M's jewellery,
    socks and hair accessories are never shown again to their buyers; garments are, since
    H&M customers do buy the same article again within days (sizes, duplicates)."""
    repurchase_min_rate: Annotated[float, Meta(ge=0, le=1)] = 0.001
    """...and at least this absolute rate. Items below are never recommended again to a
    customer who bought them ("not the jacket you bought yesterday")."""
    history_items: Annotated[int, Meta(ge=1, le=1000)] = 100
    """Most recent distinct purchases kept per profile (excluded from recommendations)."""
    chunk_users: Positive = 1024
    """No longer read: the pooled blend (training/candidates.py) scores blocks of its own size
    in bounded memory. Kept so config files that set it still load."""

    # -- customer segments (training/models/segments.py) and the homepage ---------------------
    rfm_bins: Annotated[int, Meta(ge=2, le=10)] = 5
    """Recency, frequency and monetary scores run 1..rfm_bins: quantiles over the customers
    with purchases (ties share a score). Profiles carry them as segment ``rfm:<R><F><M>``."""
    segment_min_purchases: Positive = 3
    """Purchases a customer needs before the share-based segments (discount hunter, trend
    seeker) judge them: two purchases say little about a habit."""
    segment_min_lift: NonNegative = 1.5
    """Those shares must also reach this multiple of the shop-wide share: where everything
    sells reduced, or the data is a week long so every item looks new, nobody stands out."""
    discount_min_markdown: Annotated[float, Meta(gt=0, lt=1)] = 0.1
    """A purchase is discounted when paid at least this fraction below the item's usual (list)
    price; small differences are rounding and channel prices, not a sale."""
    discount_share: Annotated[float, Meta(ge=0, le=1)] = 0.4
    """Discount hunter: at least this share of their priced purchases were discounted (two in
    five: hunters also buy basics, which are never reduced, and items before their markdown)."""
    trend_days: Annotated[float, Meta(gt=0)] = 30.0
    """A purchase is "soon after the item first appeared" within this many days of the item's
    first-seen date (else its first sale in the data)."""
    trend_share: Annotated[float, Meta(ge=0, le=1)] = 0.5
    """Trend seeker: at least this share of their purchases were that soon."""
    new_max_orders: Annotated[int, Meta(ge=0)] = 1
    """New customer: at most this many orders (distinct purchase times)..."""
    new_max_days: Annotated[float, Meta(gt=0)] = 120.0
    """...the first no longer ago than this; an older single order is lapsing, not new."""
    vip_top_spend: Annotated[float, Meta(gt=0, le=1)] = 0.1
    """VIP: spend (kept purchases) in this top share of customers..."""
    vip_top_orders: Annotated[float, Meta(gt=0, le=1)] = 0.25
    """...and orders in this top share (top spenders who are also frequent buyers)."""
    lapsing_days: Annotated[float, Meta(gt=0)] = 120.0
    """Lapsing: no order for this many days, for customers without a usual gap..."""
    lapsing_gap_factor: Annotated[float, Meta(gt=1)] = 3.0
    """...or, with ``lapsing_min_gap_orders`` orders or more, for this many times their usual
    (mean) gap between orders..."""
    lapsing_min_gap_orders: Annotated[int, Meta(ge=2)] = 3
    lapsing_min_days: NonNegative = 30.0
    """...and at least this many days (a weekly buyer is not lost after three weeks)."""
    homepage: HomepageRules = msgspec.field(default_factory=HomepageRules)
    """Homepage layouts per segment and the trainer's new-arrivals and on-sale lists
    (artifacts/homepage.py documents every field); written into the bundle's manifest. In a
    TOML config: ``[homepage]``, ``[homepage.layouts.discount_hunter]``, ..."""

    # -- evaluation and the publish gate -------------------------------------------------------
    holdout_days: Annotated[int, Meta(ge=1)] = 7
    """Days at the end of the data the train command holds out to measure the bundle it
    exports (capped at a fifth of the data's span, at least one day)."""
    gate_tolerance: Annotated[float, Meta(ge=0, le=1)] = 0.05
    """--gate refuses a bundle whose MAP@12 (all test customers, or those with history) is
    more than this fraction below the serving bundle's."""

    # -- Redis ---------------------------------------------------------------------------------
    redis_batch: Annotated[int, Meta(ge=1, le=100_000)] = 2000
    """Profiles per pipelined round trip when writing to Redis."""

    @classmethod
    def load(cls, path: Path | None = None, **overrides) -> TrainConfig:
        """Defaults, then a JSON or TOML file, then explicit overrides (None values ignored)."""
        data: dict = {}
        if path is not None:
            path = Path(path)
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
            try:
                data = (msgspec.toml.decode(raw) if path.suffix.lower() == ".toml"
                        else msgspec.json.decode(raw))
            except msgspec.DecodeError as exc:
                raise ConfigError(f"{path}: {exc}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected an object of TrainConfig fields, "
                                  f"got {type(data).__name__}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{path or 'config'}: {exc}") from None

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)
