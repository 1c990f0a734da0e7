"""The repurchase rule end to end: learned rates (hand-computed), the bundle's flag, the
candidates, and the selection the service runs (``artifacts.ranking``)."""

import datetime as dt

import msgspec
import numpy as np
import polars as pl
import pytest

from artifacts.bundle import Bundle
from artifacts.catalog import Catalog
from artifacts.profiles import BatchProfile
from artifacts.ranking import for_user, not_again, purchased_indices
from training.config import TrainConfig
from training.models.repurchase import fit_repurchase, repurchase_scores


def _purchases(rows):
    """rows: (user_idx, item_idx, day, returned)"""
    return pl.DataFrame({
        "user_idx": [r[0] for r in rows], "item_idx": [r[1] for r in rows],
        "ts": [dt.datetime(2026, 1, r[2]) for r in rows], "returned": [r[3] for r in rows]})


ROWS = [
    # item 0 (category 0): u0 bought it twice, u1 once in one order of two units, u2 once
    (0, 0, 1, False), (0, 0, 5, False), (1, 0, 2, False), (1, 0, 2, False), (2, 0, 3, None),
    # item 1 (category 0): u0 returned it and bought it again (an exchange, not a repurchase)
    (0, 1, 1, True), (0, 1, 4, False),
    # item 2 (category 1): two buyers, neither again
    (0, 2, 2, False), (1, 2, 3, False),
]


def test_repurchase_rates_hand_computed():
    cats = np.array([0, 0, 1, 1])
    model = fit_repurchase(_purchases(ROWS), cats, 2,
                           TrainConfig(repurchase_prior=0.0, repurchase_min_ratio=0.5,
                                       repurchase_min_rate=0.0))
    # (customer, item) pairs kept at some point: (0,0) bought again; (1,0), (2,0) no; (0,1)
    # kept only from day 4: no; (0,2), (1,2) no -> 1 of 6; category 0 holds 4 of them
    assert model.overall == pytest.approx(1 / 6)
    assert model.category_rate.tolist() == pytest.approx([1 / 4, 0.0])
    assert model.item_rate.tolist() == pytest.approx([1 / 3, 0.0, 0.0, 0.0])
    assert model.threshold == pytest.approx(0.5 / 6)
    assert model.repurchasable.tolist() == [True, False, False, False]


def test_repurchase_rates_shrink_towards_category_and_shop():
    cats = np.array([0, 0, 1, 1])
    model = fit_repurchase(_purchases(ROWS), cats, 2,
                           TrainConfig(repurchase_prior=2.0, repurchase_min_ratio=0.0,
                                       repurchase_min_rate=0.05))
    overall = 1 / 6
    cat0 = (1 + 2 * overall) / (4 + 2)
    cat1 = (0 + 2 * overall) / (2 + 2)
    assert model.category_rate.tolist() == pytest.approx([cat0, cat1])
    # item 3 was never bought: its category's rate
    assert model.item_rate.tolist() == pytest.approx(
        [(1 + 2 * cat0) / (3 + 2), (0 + 2 * cat0) / (1 + 2), (0 + 2 * cat1) / (2 + 2), cat1])
    assert model.repurchasable.tolist() == [True, True, False, True]  # rate >= 0.05


def test_repurchase_scores_only_for_repurchasable_items():
    cats = np.array([0, 0, 1, 1])
    purchases = _purchases(ROWS)
    model = fit_repurchase(purchases, cats, 2,
                           TrainConfig(repurchase_prior=0.0, repurchase_min_rate=0.0))
    scores = repurchase_scores(purchases, (3, 4), dt.datetime(2026, 1, 5), model, 4.0)
    dense = scores.toarray()
    # u0, item 0: rate 1/3 x (0.5^(4/4) + 0.5^0)
    assert dense[0, 0] == pytest.approx((1 / 3) * 1.5)
    assert dense[1, 0] == pytest.approx((1 / 3) * 2 * 0.5 ** (3 / 4))
    assert dense[:, 1:].sum() == 0.0


@pytest.fixture(scope="module")
def strict_bundle(shop, tmp_path_factory):
    """A demo bundle whose rule leaves some categories non-repurchasable whatever the
    defaults (only items bought again at least half as often as the shop's average)."""
    from training.pipeline import train

    root = tmp_path_factory.mktemp("strict")
    train(shop, TrainConfig(factors=8, iterations=3, candidates=40, repurchase_min_ratio=0.5),
          root, progress=False)
    return Bundle.open(root)


def test_bundle_flags_what_may_be_bought_again(strict_bundle):
    demo_bundle = strict_bundle
    flags = np.asarray(demo_bundle["item_repurchasable"])
    assert flags.dtype == bool and 0 < flags.sum() < flags.size
    summary = demo_bundle.manifest.repurchase
    assert summary["repurchasable_items"] == int(flags.sum())
    assert "basics" in summary["repurchasable_categories"]  # the demo shop rebuys basics


def _user_with_buy_again(demo_bundle):
    catalog = Catalog(demo_bundle)
    for record in demo_bundle.profile_records():
        p = record.profile
        bought = purchased_indices(catalog, p)
        again = [c for c, s in zip(p.candidate_ids(), p.candidate_sources()) if s == "buy_again"]
        if again and any(not catalog.repurchasable(i) for i in bought):
            return catalog, p, again
    pytest.fail("the demo shop should have a customer with buy-again candidates")


def test_candidates_hold_repurchasable_purchases_only(strict_bundle):
    demo_bundle = strict_bundle
    catalog = Catalog(demo_bundle)
    for record in demo_bundle.profile_records():
        p = record.profile
        bought = set(p.purchased)
        for item, source in zip(p.candidate_ids(), p.candidate_sources()):
            if item in bought:
                assert catalog.repurchasable(catalog.items.index(item))
                assert source == "buy_again"


def test_for_you_rule_excludes_purchases_unless_repurchasable(strict_bundle):
    demo_bundle = strict_bundle
    catalog, profile, again = _user_with_buy_again(demo_bundle)
    picked = for_user(catalog, profile, n=40, market=profile.market, repurchase=True)
    ids = [i.item_id for i in picked.items]
    assert len(set(ids)) == len(ids) == 40
    never = {catalog.ids[i] for i in not_again(catalog, profile)}
    assert never and not set(ids) & never
    assert set(again[:3]) <= set(ids)
    assert {i.source for i in picked.items if i.item_id in again} == {"buy_again"}
    # the default (batch e-mails and other callers): every purchase stays out
    plain = for_user(catalog, profile, n=40, market=profile.market)
    assert not {i.item_id for i in plain.items} & set(profile.purchased)


def test_popular_top_up_follows_the_same_rule(strict_bundle):
    demo_bundle = strict_bundle
    catalog = Catalog(demo_bundle)
    popular = [catalog.ids[i] for i, _ in catalog.popular(0)]
    repurchasable = [i for i in popular if catalog.repurchasable(catalog.items.index(i))]
    other = [i for i in popular if not catalog.repurchasable(catalog.items.index(i))]
    profile = BatchProfile(bundle_version=demo_bundle.version,
                           purchased=[repurchasable[0], other[0]])
    ids = [i.item_id for i in for_user(catalog, profile, n=len(popular), market=None,
                                       repurchase=True).items]
    assert repurchasable[0] in ids and other[0] not in ids


def test_bundle_without_the_optional_array_repurchases_nothing(demo_bundle_root, tmp_path):
    import shutil

    src = Bundle.open(demo_bundle_root).path
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    (dst / "item_repurchasable.npy").unlink()
    manifest = msgspec.json.decode((dst / "manifest.json").read_bytes())
    del manifest["files"]["item_repurchasable.npy"]
    (dst / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    old = Bundle.open(dst)
    assert not np.asarray(old["item_repurchasable"]).any()
    catalog = Catalog(old)
    record = next(r for r in old.profile_records() if r.profile.purchased)
    assert not_again(catalog, record.profile) == purchased_indices(catalog, record.profile)


def test_event_weights_add_views_and_carts_of_buyers(shop):
    from training.interactions import build_interactions

    plain = build_interactions(shop, TrainConfig())
    weighted = build_interactions(shop, TrainConfig(view_weight=0.2, cart_weight=0.5))
    assert weighted.users.ids == plain.users.ids  # events index no new customers
    assert weighted.matrix.nnz > plain.matrix.nnz
    assert weighted.matrix.sum() > plain.matrix.sum()
    assert weighted.purchases.equals(plain.purchases)  # purchases (and buy-again) unchanged


def test_answers_for_a_market_hold_only_what_it_sells_top_ups_included(demo_bundle, profiles):
    """When the market's popular list runs out, the overall one tops the answer up, still
    with items that market sells."""
    catalog = Catalog(demo_bundle)
    assert catalog.markets
    customer = next(p for p in profiles.values() if p.candidate_ids())
    for market in catalog.markets:
        sold = catalog.available(catalog.market_row(market))
        for profile in (None, customer):
            answer = for_user(catalog, profile, n=len(catalog.ids), market=market)
            assert answer.items
            off = [i.item_id for i in answer.items if not sold[catalog.items.index(i.item_id)]]
            assert not off, (market, off[:5])


def test_a_profile_with_nothing_to_show_is_answered_as_popular(demo_bundle):
    """A profile without candidates (say, known only by a live event's market) yields popular
    items, and says so: ``source`` is never ``personal`` without a personal item."""
    catalog = Catalog(demo_bundle)
    market = catalog.markets[0]
    answer = for_user(catalog, BatchProfile(bundle_version=catalog.version, market=market),
                      n=5, market=market)
    assert answer.source == "popular_market" and len(answer.items) == 5
    assert {i.source for i in answer.items} == {"popular_market"}
    assert answer.notes == ["no personal candidates to show: popular items"]
