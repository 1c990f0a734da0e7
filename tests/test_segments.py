"""Customer segments: each rule on a hand-made shop with a known answer, thresholds from the
config, what the trainer writes (profiles, manifest, output), and agreement with the demo shop's
hidden behaviours."""

import datetime as dt

import msgspec
import polars as pl
import pytest

from artifacts.homepage_rules import SEGMENTS
from training.config import TrainConfig
from training.data.schema import CanonicalData
from training.interactions import build_interactions
from training.models.segments import describe, fit_segments, scores

END = dt.datetime(2026, 6, 30, 12)


def _ago(days: float) -> dt.datetime:
    return END - dt.timedelta(days=days)


def _shop(discount_everything: bool = False) -> CanonicalData:
    """Ten customers; items a..f at 100 (list price), launched long ago except n1..n4."""
    rows = []  # user, item, days ago, price

    def buy(user, item, days, price=100.0):
        rows.append((user, item, days, price))

    for k, item in enumerate("abcd"):  # the hunter: four reduced purchases, four orders
        buy("hunter", item, 10 + 7 * k, 60.0)
    for k in range(4):  # the trend seeker: new items, each within days of its launch
        buy("trendy", f"n{k + 1}", 2 + k)
    buy("newbie", "a", 5)
    buy("newbie", "b", 5)  # same basket: still one order
    buy("oldone", "c", 200)  # one order, long ago: lapsing, not new
    for k in range(10):  # every 10 days, then silent for 60 days (> 3 x 10 and > 30)
        buy("steady", "abcdef"[k % 6], 60 + 10 * k)
    for k in range(12):  # the VIP: most orders, most spend, still active
        buy("big", "abcdef"[k % 6], 1 + 5 * k, 300.0)
    for user in ("r1", "r2", "r3", "r4"):  # regulars
        for k in range(3):
            buy(user, "def"[k], 20 + 15 * k)
    if discount_everything:
        rows = [(u, i, d, 60.0) for u, i, d, _ in rows]
    purchases = pl.DataFrame({
        "user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
        "ts": [_ago(r[2]) for r in rows], "price": [r[3] for r in rows]})
    names = list("abcdef") + ["n1", "n2", "n3", "n4"]
    launched = [_ago(400)] * 6 + [_ago(2 + k + 1) for k in range(4)]
    items = pl.DataFrame({"item_id": names, "list_price": [100.0] * 10,
                          "first_seen": launched, "category": ["tops"] * 10})
    customers = pl.DataFrame({
        "user_id": ["hunter", "trendy", "newbie", "never-ordered"],
        "consent_personalisation": [True, False, None, True],
        "consent_sensitive": [False, True, None, None]})
    return CanonicalData("shop", purchases, items, customers)


def _segments(data: CanonicalData, **config):
    cfg = TrainConfig(**config)
    inter = build_interactions(data, cfg)
    seg = fit_segments(data, inter, cfg)
    labels = {u: seg.labels[inter.users.index(u)] for u in inter.users.ids}
    return seg, labels


def _named(labels: dict, user: str) -> set[str]:
    return {s for s in labels[user] if not s.startswith("rfm:")}


def test_each_rule_on_a_shop_with_a_known_answer():
    seg, labels = _segments(_shop())
    assert _named(labels, "hunter") == {"discount_hunter"}
    assert _named(labels, "trendy") == {"trend_seeker"}
    assert _named(labels, "newbie") == {"new"}
    assert _named(labels, "oldone") == {"lapsing"}, "an old single order is lapsing, not new"
    assert "lapsing" in _named(labels, "steady"), "silent for six times the usual gap"
    assert _named(labels, "big") == {"vip"}
    for user in ("r1", "r2", "r3", "r4"):
        assert not _named(labels, user) & {"discount_hunter", "trend_seeker", "vip", "new"}
    assert seg.summary["sizes"] == {s: sum(s in v for v in labels.values()) for s in SEGMENTS}


def test_rfm_scores_rank_customers_and_ties_share_a_score():
    _, labels = _segments(_shop())
    rfm = {u: next(s for s in v if s.startswith("rfm:"))[4:] for u, v in labels.items()}
    assert rfm["big"] == "555"  # the most recent, frequent and highest-spending customer
    assert rfm["oldone"][0] == "1"  # the least recent
    assert len({rfm[u][1] for u in ("r1", "r2", "r3", "r4")}) == 1  # same orders, same F
    assert scores([1, 1, 1, 2], 5).tolist() == [1, 1, 1, 4]


def test_spend_counts_the_quantity_bought():
    """Spend is price x quantity: one line of 40 units at 100 outspends the VIP's twelve
    orders at 300, so its monetary score is the top one (a line counted once it would be the
    bottom one)."""
    shop = _shop()
    bulk = pl.DataFrame({"user_id": ["bulk"], "item_id": ["a"], "ts": [_ago(30)],
                         "price": [100.0], "quantity": [40]})
    purchases = pl.concat([shop.purchases, bulk.select(
        pl.col(c).cast(shop.purchases.schema[c]) for c in bulk.columns)], how="diagonal")
    _, labels = _segments(CanonicalData("shop", purchases, shop.items, shop.customers))
    rfm = {u: next(s for s in v if s.startswith("rfm:"))[4:] for u, v in labels.items()}
    assert rfm["bulk"][2] == "5" and rfm["bulk"][1] == "1"


def test_thresholds_come_from_the_config():
    _, labels = _segments(_shop(), discount_min_markdown=0.5)  # 40% off is not enough now
    assert "discount_hunter" not in labels["hunter"]
    _, labels = _segments(_shop(), trend_days=0.5)  # bought a day or more after launch
    assert "trend_seeker" not in labels["trendy"]
    _, labels = _segments(_shop(), lapsing_days=365)
    assert "lapsing" not in labels["oldone"]
    _, labels = _segments(_shop(), new_max_orders=0)
    assert "new" not in labels["newbie"]
    seg, _ = _segments(_shop(), vip_top_spend=1.0, vip_top_orders=1.0)
    assert seg.summary["sizes"]["vip"] == len(seg.labels)
    assert seg.summary["rules"]["vip_top_spend"] == 1.0


def test_nobody_stands_out_where_everything_sells_reduced():
    seg, labels = _segments(_shop(discount_everything=True))
    assert seg.summary["shop_discount_share"] == 1.0
    assert not any("discount_hunter" in v for v in labels.values())


def test_consent_comes_from_the_customer_table():
    data = _shop()
    cfg = TrainConfig()
    inter = build_interactions(data, cfg)
    seg = fit_segments(data, inter, cfg)
    consent = {u: (seg.consent_personalisation[i], seg.consent_sensitive[i])
               for i, u in enumerate(inter.users.ids)}
    assert consent["hunter"] == (True, False)
    assert consent["trendy"] == (False, True)
    assert consent["newbie"] == (None, None) and consent["big"] == (None, None)
    assert seg.summary["customers_without_orders"] == 1
    assert "without orders (no profile) 1" in describe(seg.summary)


def test_segment_rules_are_validated_in_the_config():
    with pytest.raises(msgspec.ValidationError, match="unknown section"):
        TrainConfig.load(None, homepage={"layouts": {"default": {
            "sections": ["for_you", "horoscope"], "reason": "x"}}})
    with pytest.raises(msgspec.ValidationError):
        TrainConfig.load(None, vip_top_spend=0)


def test_toml_config_tunes_layouts(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text('discount_share = 0.6\n[homepage]\nmax_category_run = 2\n'
                    '[homepage.layouts.default]\nsections = ["trending", "for_you"]\n'
                    'reason = "ours"\n')
    config = TrainConfig.load(path)
    assert config.discount_share == 0.6 and config.homepage.max_category_run == 2
    assert config.homepage.layouts["default"].sections == ["trending", "for_you"]


def test_trainer_writes_segments_into_profiles_and_manifest(demo_bundle, shop):
    manifest = demo_bundle.manifest
    sizes = manifest.segments["sizes"]
    assert set(sizes) == set(SEGMENTS) and all(v > 0 for v in sizes.values())
    assert manifest.segments["rules"]["lapsing_days"] == 120.0
    assert manifest.homepage["layouts"]["discount_hunter"]["sections"][0] == "on_sale"
    records = {r.user_id: r.profile for r in demo_bundle.profile_records()}
    counted = {s: sum(s in p.segments for p in records.values()) for s in SEGMENTS}
    assert counted == sizes
    assert all(any(s.startswith("rfm:") for s in p.segments) for p in records.values())
    table = {r["user_id"]: r for r in shop.customers.iter_rows(named=True)}
    for user, profile in records.items():
        assert profile.consent_personalisation == table[user]["consent_personalisation"]
        assert profile.consent_sensitive == table[user]["consent_sensitive"]


def test_trainer_finds_the_demo_shops_hidden_behaviours(demo_bundle):
    """Not perfectly (behaviours overlap: a regular can stop buying for months), but each
    segment is several times richer in its behaviour than the shop, and finds most of it."""
    from training.data.synthetic import generate_shop_with_truth

    _, truth = generate_shop_with_truth(seed=7, n_customers=600, n_items=400, days=240)
    records = {r.user_id: r.profile for r in demo_bundle.profile_records()}
    for segment in SEGMENTS:
        found = {u for u, p in records.items() if segment in p.segments}
        actual = {u for u in records if truth.behaviour[u] == segment}
        precision = len(found & actual) / len(found)
        recall = len(found & actual) / len(actual)
        base = len(actual) / len(records)
        assert precision >= 3 * base and recall >= 0.5, (segment, precision, recall, base)
