"""End to end on the real H&M data: train, load profiles into real Redis, serve, and check the
served recommendations beat popularity for customers with history (a quality smoke test; the full
evaluation harness is separate).

Split: train on purchases before 2020-09-21, test on the purchases of 2020-09-21.
"""

import datetime as dt

import polars as pl
import pytest
from litestar.testing import AsyncTestClient

from artifacts.bundle import Bundle
from service.app import create_app
from artifacts.catalog import Catalog
from service.recommender import Recommender
from service.settings import Settings
from service.store import RedisProfileStore
from tests.conftest import shared_dataset
from training.config import TrainConfig
from training.data import load_dataset
from training.evaluation.metrics import average_precision_at_k, mean
from training.pipeline import train

pytestmark = pytest.mark.realdata
SPLIT = dt.datetime(2020, 9, 21)


@pytest.fixture(scope="module")
def hm():
    return load_dataset("hm", shared_dataset("hm"))


@pytest.fixture(scope="module")
def hm_trained(hm, tmp_path_factory, redis_url):
    import uuid

    from tests.conftest import delete_prefix

    prefix = f"test-hm-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("hm-bundles")
    result = train(hm.before(SPLIT), TrainConfig(), root, redis_url=redis_url,
                   redis_prefix=prefix, progress=False)
    yield result, Bundle.open(root), prefix
    delete_prefix(redis_url, prefix)


def test_bundle_and_profiles_from_hm(hm_trained, redis_url):
    import redis

    result, bundle, prefix = hm_trained
    assert result.published and bundle.version == result.version
    assert len(bundle.items) == 105_542
    assert result.profiles_pushed == bundle.manifest.counts["users"] > 50_000
    client = redis.Redis.from_url(redis_url)
    keys = sum(1 for _ in client.scan_iter(match=f"{prefix}:v1:*:batch", count=10_000))
    client.close()
    assert keys == result.profiles_pushed


async def test_service_answers_from_hm_bundle(hm_trained, redis_url):
    _, bundle, prefix = hm_trained
    store = RedisProfileStore(redis_url, prefix=prefix, timeout_s=1.0)
    user = next(r.user_id for r in bundle.profile_records() if len(r.profile.purchased) >= 3)
    async with AsyncTestClient(create_app(Settings(), bundle=bundle, store=store)) as client:
        r = await client.get(f"/v1/users/{user}/recommendations")
        assert r.status_code == 200 and r.json()["source"] == "personal"
        item = r.json()["items"][0]["item_id"]
        similar = await client.get(f"/v1/items/{item}/similar")
        assert similar.status_code == 200 and len(similar.json()["items"]) == 12


async def test_served_recommendations_beat_popularity(hm, hm_trained, redis_url):
    _, bundle, prefix = hm_trained
    test = (hm.purchases.filter(pl.col("ts") >= SPLIT)
            .group_by("user_id").agg(pl.col("item_id").unique()))
    actual = dict(zip(test["user_id"].to_list(), map(set, test["item_id"].to_list())))
    history = set(hm.purchases.filter(pl.col("ts") < SPLIT)["user_id"].unique().to_list())
    users = sorted(u for u in actual if u in history)
    assert len(users) > 1000

    # baseline: the 12 most bought items of the 7 days before the split
    week = hm.purchases.filter((pl.col("ts") >= SPLIT - dt.timedelta(days=7)) & (pl.col("ts") < SPLIT))
    popular = week.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])
    popular = popular["item_id"].head(12).to_list()

    store = RedisProfileStore(redis_url, prefix=prefix, timeout_s=1.0)
    recommender = Recommender(Catalog(bundle), store)
    served, baseline = [], []
    for user in users:
        answer = await recommender.for_user(user, n=12)
        assert not answer.degraded
        served.append(average_precision_at_k([i.item_id for i in answer.items], actual[user]))
        baseline.append(average_precision_at_k(popular, actual[user]))
    await store.close()
    print(f"\nH&M customers with history: {len(users)}, MAP@12 served {mean(served):.5f} "
          f"vs popularity {mean(baseline):.5f}")
    assert mean(served) > mean(baseline)


@pytest.mark.parametrize("dataset,split_at,days", [
    ("hm", dt.datetime(2020, 9, 21), 1),
    ("online_retail", dt.datetime(2011, 10, 1), None),
])
def test_evaluation_harness_served_leads_every_baseline(dataset, split_at, days):
    """The evaluate command's figures on the reported splits (benchmarks/RESULTS.md): the
    served recommendations beat every baseline on MAP@12, overall and with history."""
    from training.evaluation.harness import SERVED, evaluate
    from training.evaluation.split import time_split

    data = load_dataset(dataset, shared_dataset(dataset))
    split = time_split(data, split_at, days)
    assert not split.train.purchases.filter(pl.col("ts") >= split_at).height
    ev = evaluate(split, TrainConfig(), progress=False)
    served = ev.row(SERVED)
    baselines = [r for r in ev.rows if r.name != SERVED]
    assert {r.name for r in baselines} >= {"popular_7d", "als", "bm25", "buy_again"}
    for group in ("all", "with_history"):
        best = max(baselines, key=lambda r: r.groups[group].map12)
        print(f"\n{dataset} {group}: served {served.groups[group].map12:.5f}, "
              f"best baseline {best.name} {best.groups[group].map12:.5f}")
        assert served.groups[group].map12 > best.groups[group].map12
    popular = max(r.groups["with_history"].map12 for r in baselines if r.name.startswith("popular"))
    assert served.groups["with_history"].map12 >= 1.5 * popular
