"""Preselected size: the size model on the demo shop (against its hidden truth), the shared
decision function, and the two endpoints (real Redis for live signals, a dead one for
degradation, an older bundle without a size model)."""

import datetime as dt
import json
import shutil

import msgspec
import numpy as np
import polars as pl
import pytest
from litestar.testing import AsyncTestClient

from artifacts.bundle import MANIFEST_FILE, Bundle
from artifacts.profiles import SizePreference, SizeSignal
from artifacts.sizing import SizeView, choose_size
from service.app import create_app
from service.settings import Settings
from service.store import MemoryProfileStore, RedisProfileStore
from training.config import TrainConfig
from training.data.schema import CanonicalData
from training.data.synthetic import generate_shop_with_truth
from training.interactions import build_interactions
from training.models.sizes import (SizeConfig, _evidence_profiles, _with_recency, fit_sizes,
                                   observations, pair_table, size_order)
from training.redis_push import push_profiles

SHOP = {"seed": 7, "n_customers": 600, "n_items": 400, "days": 240}  # = conftest's shop


@pytest.fixture(scope="module")
def shop_truth():
    return generate_shop_with_truth(**SHOP)


@pytest.fixture(scope="module")
def fitted(shop_truth):
    data, _ = shop_truth
    inter = build_interactions(data, TrainConfig())
    model = fit_sizes(data, inter)
    return data, inter, model, model.view(inter.items)


def _order(view, system):
    return list(view.systems[view.system_index[system]].order)


def _items(view, truth, system, shift, *, offset=None):
    """Items of ``system`` whose hidden fit is ``shift`` (and learnt offset in ``offset``)."""
    found = []
    for i, item_id in enumerate(view.items.ids):
        if view.system_of(i) != system or truth.item_size_shift[item_id] != shift:
            continue
        if offset is None or offset[0] <= view.item_offset[i] <= offset[1]:
            found.append(i)
    return found


# -- the size model ----------------------------------------------------------------------------

def test_size_orders():
    assert size_order(["10", "8", "12.5", "6"], []) == ["6", "8", "10", "12.5"]
    assert size_order(["L", "xs", "M", "XXL", "S"], []) == ["xs", "S", "M", "L", "XXL"]
    # no rule applies: the catalogue's own lists, merged
    assert size_order(["petite", "tall", "regular"],
                      [["petite", "regular"], ["regular", "tall"]]) == ["petite", "regular", "tall"]
    assert size_order(["b", "a"], [["a", "b"], ["b", "a"]]) == ["b", "a"]  # a cycle: as seen


def test_recency_counts_back_from_each_customers_latest_purchase_in_a_system():
    """``back`` and ``n_sys`` as the definition reads, on interleaved customers and systems
    (rows in purchase order per customer), checked against a plain loop."""
    rng = np.random.default_rng(11)
    rows = 300
    obs = pl.DataFrame({"user_idx": np.sort(rng.integers(0, 20, rows)),
                        "sys": rng.integers(0, 3, rows), "seq": np.arange(rows)})
    got = _with_recency(obs)
    for row in got.rows(named=True):
        same = [r for r in obs.rows(named=True)
                if (r["user_idx"], r["sys"]) == (row["user_idx"], row["sys"])]
        assert row["n_sys"] == len(same)
        assert row["back"] == sum(r["seq"] > row["seq"] for r in same)
    assert _with_recency(obs.clear()).columns == [*obs.columns, "back", "n_sys"]


def test_evidence_keeps_the_latest_purchases_heaviest_first():
    """Evidence reads the last ``max_history`` purchases per system, sums their decayed
    weights per (size, kind), lists them heaviest first (ties by size order, then kind) and
    keeps at most ``max_evidence`` per system."""
    end = dt.datetime(2024, 6, 1)
    day = dt.timedelta(days=1)
    # customer 0, system 0: sizes 2, 2, 1, 3 (kept) and 1 (too small), newest last
    obs = pl.DataFrame({"user_idx": [0] * 5 + [1], "sys": [0] * 5 + [1],
                        "pos": [2, 2, 1, 3, 1, 0], "kind": [0, 0, 0, 0, 1, 0],
                        "ts": [end - 9 * day, end - 8 * day, end - 2 * day, end - 2 * day,
                               end - 2 * day, end]})
    orders = {"alpha": ["S", "M", "L", "XL"], "shoes": ["40"]}
    config = SizeConfig(max_history=4, max_evidence=2, half_life_days=2)
    profiles = _evidence_profiles(_with_recency(obs), end, list(orders), orders, config)
    # the oldest purchase (size L, 9 days ago) is past max_history; L's second one weighs
    # 0.5 ** 4; M kept, XL kept and M too small each 0.5 and tie: M kept comes first
    assert profiles[0] == [SizePreference("alpha", "M", "kept", 0.5),
                           SizePreference("alpha", "M", "small", 0.5)]
    assert profiles[1] == [SizePreference("shoes", "40", "kept", 1.0)]
    none = SizeConfig(max_history=4, max_evidence=0)
    assert _evidence_profiles(_with_recency(obs), end, list(orders), orders, none) == {}


def test_evidence_weights_that_are_stored_equal_come_in_size_order():
    """The order follows the weights as stored (4 decimals), then the size order: weights a
    hair apart (0.50004 and 0.50001, both 0.5) are a tie. Sums in the last bits depend on the
    order the group-by adds them in, and must not reorder a customer's evidence run to run."""
    end = dt.datetime(2024, 6, 1)
    obs = pl.DataFrame({"user_idx": [0, 0], "sys": [0, 0], "pos": [2, 1], "kind": [0, 0],
                        "ts": [end - dt.timedelta(seconds=172_780),     # 0.5 ** 0.99988
                               end - dt.timedelta(seconds=172_795)]})   # 0.5 ** 0.99997
    orders = {"alpha": ["S", "M", "L", "XL"]}
    config = SizeConfig(max_history=4, max_evidence=2, half_life_days=2)
    profiles = _evidence_profiles(_with_recency(obs), end, list(orders), orders, config)
    assert profiles[0] == [SizePreference("alpha", "M", "kept", 0.5),
                           SizePreference("alpha", "L", "kept", 0.5)]


def test_pair_table_sums_every_pair_of_a_customers_purchases():
    """``pair_table`` aggregates per customer and size; the oracle joins purchase to purchase,
    as the definition reads (random customers, two systems, all three kinds)."""
    rng = np.random.default_rng(5)
    lengths = np.array([5, 3])
    width, rows = int(lengths.max()), 200
    sys_ = rng.integers(0, 2, rows)
    recent = pl.DataFrame({"user_idx": rng.integers(0, 12, rows), "sys": sys_,
                           "pos": rng.integers(0, lengths[sys_]), "kind": rng.integers(0, 3, rows)})
    recent = recent.with_columns(n=pl.len().over("user_idx", "sys")).filter(pl.col("n") >= 2)
    rows0 = np.array([0, 3 * lengths[0]])

    expected = np.zeros((3 * int(lengths.sum()), width))
    purchases = recent.rows(named=True)
    for i, a in enumerate(purchases):
        for j, b in enumerate(purchases):
            if i != j and b["kind"] == 0 and (a["user_idx"], a["sys"]) == (b["user_idx"], b["sys"]):
                row = rows0[a["sys"]] + a["kind"] * lengths[a["sys"]] + a["pos"]
                expected[row, b["pos"]] += 1.0 / (a["n"] - 1)

    assert expected.sum() > 0
    np.testing.assert_allclose(pair_table(recent, rows0, lengths, width), expected, atol=1e-12)
    empty = recent.clear()
    assert not pair_table(empty, rows0, lengths, width).any()


def test_model_learns_sizes_offsets_and_orders(fitted, shop_truth):
    data, inter, model, view = fitted
    _, truth = shop_truth
    assert _order(view, "alpha") == ["XS", "S", "M", "L", "XL", "XXL"]
    assert _order(view, "eu_women")[:3] == ["32", "34", "36"]
    offset = {shift: np.mean([view.item_offset[i] for s in ("alpha", "eu_women", "waist")
                              for i in _items(view, truth, s, shift)]) for shift in (-1, 0, 1)}
    assert offset[1] > 0.15 and offset[-1] < -0.15 and abs(offset[0]) < 0.03
    # customers' kept size, asked for true-to-size items offering it
    hits = total = 0
    for u, uid in enumerate(inter.users.ids[:300]):
        kept = truth.kept_sizes[uid].get("alpha")
        for i in _items(view, truth, "alpha", 0, offset=(-0.1, 0.1))[:15]:
            answer = choose_size(view, i, model.profiles.get(u, []))
            if answer.size is not None and kept in view.offered(i):
                total += 1
                hits += answer.size == kept
    assert total > 500 and hits / total > 0.9


def test_gift_in_another_department_does_not_move_the_size(fitted, shop_truth):
    data, inter, model, view = fitted
    _, truth = shop_truth
    women_item = next(i for i in _items(view, truth, "alpha", 0, offset=(-0.05, 0.05))
                      if data.items["department"][i] == "women"
                      and {"S", "M", "XXL"} <= set(view.offered(i)))
    men_item = next(i for i in range(len(view.items)) if view.system_of(i) == "alpha"
                    and data.items["department"][i] == "men" and "XXL" in view.offered(i))
    user = next(uid for u, uid in enumerate(inter.users.ids)
                if truth.department[uid] == "women" and truth.kept_sizes[uid]["alpha"] == "M"
                and sum(p.system == "alpha" for p in model.profiles.get(u, [])) >= 1
                and choose_size(view, women_item, model.profiles[u]).size == "M")
    gift = pl.DataFrame({"user_id": [user] * 2, "item_id": [view.items.id(men_item)] * 2,
                         "ts": [data.purchases["ts"].max()] * 2, "size": ["XXL"] * 2})
    with_gift = CanonicalData(data.name, pl.concat([data.purchases, gift], how="diagonal"),
                              data.items, data.customers, data.events)
    inter2 = build_interactions(with_gift, TrainConfig())
    obs, _ = observations(with_gift, inter2, SizeConfig())
    u2 = inter2.users.index(user)
    assert obs.filter((pl.col("user_idx") == u2) & (pl.col("item_idx") == men_item))["gift"].all()
    model2 = fit_sizes(with_gift, inter2)
    profile = model2.profiles[u2]
    assert not any(p.size == "XXL" and p.system == "alpha" for p in profile)
    answer = choose_size(model2.view(inter2.items), women_item, profile)
    assert answer.size == "M" and answer.basis == "usual"
    # without the gift rule the same purchases would count as her own
    unfiltered = fit_sizes(with_gift, inter2, SizeConfig(gift_department_share=0.0))
    assert any(p.size == "XXL" for p in unfiltered.profiles[u2] if p.system == "alpha")


def test_item_that_runs_small_gets_one_size_up(fitted, shop_truth):
    data, inter, model, view = fitted
    _, truth = shop_truth
    order = _order(view, "alpha")
    runs_small = _items(view, truth, "alpha", 1, offset=(0.15, 1.0))
    assert runs_small
    up = total = 0
    example = None
    for u, uid in enumerate(inter.users.ids):
        kept = truth.kept_sizes[uid].get("alpha")
        if kept is None or kept == order[-1] or u not in model.profiles:
            continue
        bigger = order[order.index(kept) + 1]
        for i in runs_small:
            if {kept, bigger} <= set(view.offered(i)):
                answer = choose_size(view, i, model.profiles[u])
                if answer.size is None:
                    continue
                total += 1
                up += answer.size == bigger
                if answer.size == bigger and example is None:
                    example = answer
    assert total > 1000 and up / total > 0.75
    assert example.basis == "runs_small" and example.reason == "runs small: one size up"


def test_choose_size_contract(fitted):
    data, inter, model, view = fitted
    u, profile = next((u, p) for u, p in model.profiles.items() if len(p) >= 3)
    item = next(i for i in range(len(view.items))
                if view.system_of(i) == profile[0].system and len(view.offered(i)) > 2)
    first = choose_size(view, item, profile, min_confidence=0.0)
    assert first == choose_size(view, item, profile, min_confidence=0.0)  # pure
    assert first.size in view.offered(item) and 0.0 < first.confidence <= 1.0
    unsure = choose_size(view, item, profile, min_confidence=1.01)
    assert unsure.size is None and unsure.basis == "uncertain" and "too uncertain" in unsure.reason
    one = next(i for i in range(len(view.items)) if view.system_of(i) == "one_size")
    assert choose_size(view, one, profile).basis == "one_size"
    other = next(s.name for s in view.systems if s.name not in {p.system for p in profile})
    item = next(i for i in range(len(view.items)) if view.system_of(i) == other
                and len(view.offered(i)) > 1)
    answer = choose_size(view, item, profile)
    assert answer.size is None and answer.basis == "no_history" and other in answer.reason
    elsewhere = next(i for i in range(len(view.items))
                     if view.system_of(i) not in (other, None) and len(view.offered(i)) > 1)
    # live signals of another system (or a returned size) do not count; of this one, they do
    foreign = [SizeSignal(view.items.id(elsewhere), view.offered(elsewhere)[0], "view", 1.0),
               SizeSignal(view.items.id(item), view.offered(item)[0], "return", 1.0)]
    assert choose_size(view, item, (), foreign).basis == "no_history"
    browsed = [SizeSignal(view.items.id(item), view.offered(item)[0], "view", 1.0)] * 3
    assert choose_size(view, item, (), browsed, min_confidence=0.0).size is not None


def test_profiles_carry_size_evidence(demo_bundle):
    view = SizeView.from_bundle(demo_bundle)
    assert view.available and demo_bundle.manifest.sizes["weights"]
    profiles = [r.profile for r in demo_bundle.profile_records()]
    with_sizes = [p for p in profiles if p.sizes]
    assert len(with_sizes) > 0.8 * len(profiles)
    assert all(isinstance(s, SizePreference) and s.kind in ("kept", "small", "large")
               for p in with_sizes for s in p.sizes)


# -- the endpoints -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_truth():
    return generate_shop_with_truth(**SHOP)[1]


@pytest.fixture
async def redis_client(demo_bundle, redis_url, redis_prefix):
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        yield c


def _true_to_size(bundle, truth, system, size, k):
    view = SizeView.from_bundle(bundle)
    return [view.items.id(i) for i in _items(view, truth, system, 0, offset=(-0.05, 0.05))
            if size in view.offered(i) and len(view.offered(i)) >= 3][:k]


async def test_known_customer_gets_a_size_with_confidence_and_reason(client, demo_bundle,
                                                                     demo_truth):
    profiles = {r.user_id: r.profile for r in demo_bundle.profile_records()}
    user = next(u for u, p in profiles.items() if sum(s.system == "alpha" for s in p.sizes) >= 2
                and demo_truth.kept_sizes[u]["alpha"] == "M")
    item = _true_to_size(demo_bundle, demo_truth, "alpha", "M", 1)[0]
    r = await client.get(f"/v1/users/{user}/size", params={"item_id": item})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == "M" and body["reason"] == "your usual size"
    assert 0.5 <= body["confidence"] <= 1 and body["source"] == "profile"
    assert body["size_system"] == "alpha" and "M" in body["sizes_on_offer"]
    assert body["degraded"] is False and body["bundle_version"] == demo_bundle.version


@pytest.mark.parametrize("path,params,status,needle", [
    ("/v1/users/c00001/size", {"item_id": "nope"}, 404, "not in the catalogue"),
    ("/v1/users/c00001/size", {}, 400, "item_id"),
    ("/v1/users/c00001/size", {"item_id": "bad id"}, 400, "item_id"),
    ("/v1/users/bad%20id/size", {"item_id": "i00001"}, 400, "user_id"),
    ("/v1/sessions/s%7Bx%7D/size", {"item_id": "i00001"}, 400, "session_id"),
    ("/v1/sessions/s1/size", {"item_id": "nope"}, 404, "not in the catalogue"),
])
async def test_bad_input(client, path, params, status, needle):
    r = await client.get(path, params=params)
    assert r.status_code == status and needle in r.json()["detail"], r.text


async def test_item_with_one_size_is_a_clear_answer(client, demo_bundle):
    view = SizeView.from_bundle(demo_bundle)
    item = next(view.items.id(i) for i in range(len(view.items)) if len(view.offered(i)) == 1)
    r = await client.get("/v1/users/c00001/size", params={"item_id": item})
    assert r.status_code == 200
    assert r.json()["size"] is None and r.json()["basis"] == "one_size"


async def test_anonymous_session_that_browsed_m_gets_m(redis_client, demo_bundle, demo_truth):
    browsed, asked = (lambda x: (x[:3], x[3]))(
        _true_to_size(demo_bundle, demo_truth, "alpha", "M", 4))
    before = (await redis_client.get("/v1/sessions/sess-size/size",
                                     params={"item_id": asked})).json()
    assert before["size"] is None and before["basis"] == "no_history"
    r = await redis_client.post("/v1/events", json={"events": [
        {"event_id": f"sv{k}", "type": "view", "session_id": "sess-size", "item_id": item,
         "size": "M"} for k, item in enumerate(browsed)]})
    assert r.status_code == 200, r.text
    body = (await redis_client.get("/v1/sessions/sess-size/size",
                                   params={"item_id": asked})).json()
    assert body["size"] == "M" and body["basis"] == "browsing", body
    assert body["reason"] == "the size you have been browsing" and body["source"] == "live"
    assert body["session_id"] == "sess-size" and body["user_id"] is None


async def test_customers_own_live_purchases_count(redis_client, demo_bundle, demo_truth):
    items = _true_to_size(demo_bundle, demo_truth, "alpha", "L", 3)
    user = "size-newcomer"
    r = await redis_client.post("/v1/events", json={"events": [
        {"event_id": f"lp{k}", "type": "purchase", "user_id": user, "item_id": item,
         "size": "L"} for k, item in enumerate(items[:2])]})
    assert r.status_code == 200, r.text
    body = (await redis_client.get(f"/v1/users/{user}/size", params={"item_id": items[2]})).json()
    assert body["size"] == "L" and body["source"] == "live" and body["basis"] == "usual"


async def test_redis_down_answers_degraded_never_5xx(demo_bundle, dead_redis_url):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.1)
    item = SizeView.from_bundle(demo_bundle).items.id(10)
    async with AsyncTestClient(create_app(Settings(), bundle=demo_bundle, store=store)) as c:
        for path in ("/v1/users/c00001/size", "/v1/sessions/s-1/size"):
            r = await c.get(path, params={"item_id": item})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["degraded"] is True and body["size"] is None
            assert "unreachable" in body["notes"][0]


async def test_older_bundle_without_size_model_says_so(demo_bundle, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(demo_bundle.path, old)
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    for name in ("item_size_system", "item_size_offered", "item_size_prior", "item_fit_offset",
                 "size_loglik"):
        (old / f"{name}.npy").unlink()
        del manifest["files"][f"{name}.npy"]
    manifest.pop("sizes")
    (old / MANIFEST_FILE).write_bytes(msgspec.json.encode(manifest))
    bundle = Bundle.open(old)
    assert not SizeView.from_bundle(bundle).available
    app = create_app(Settings(), bundle=bundle, store=MemoryProfileStore(bundle.profile_records()))
    async with AsyncTestClient(app) as c:
        r = await c.get("/v1/users/c00001/size", params={"item_id": bundle.items.id(0)})
        assert r.status_code == 200
        assert r.json()["size"] is None and r.json()["basis"] == "no_model"
        assert "no size model" in r.json()["reason"]


def test_profile_schema_evolution():
    """A batch profile written before the size fields decodes with no sizes, and back."""
    from artifacts.profiles import BatchProfile, decode_batch, encode_profile

    class OldProfile(msgspec.Struct, kw_only=True, omit_defaults=True):
        bundle_version: str
        candidates: list[str] = []

    old = msgspec.msgpack.encode(OldProfile(bundle_version="v0", candidates=["a"]))
    assert decode_batch(old).sizes == []
    new = BatchProfile(bundle_version="v1", sizes=[SizePreference("alpha", "M", "kept", 2.5)])
    assert msgspec.msgpack.decode(encode_profile(new), type=OldProfile).bundle_version == "v1"
    assert decode_batch(encode_profile(new)).sizes[0].size == "M"


def test_catalogue_without_names_trains():
    """RentTheRunway's items have no names: the variants stage must not fail on them."""
    from training.models.variants import variant_similarity

    assert variant_similarity([None, None], np.zeros(2, np.int32), 5).nnz == 0
