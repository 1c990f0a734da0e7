"""Kept "for you" answers (service/recommender.py, service/kept.py): answered again only while
the bundle and the customer's stored values in real Redis are the same, next to the customer's
kept homepage."""

import asyncio
import gc
import weakref

import msgspec
import pytest

from artifacts import ranking
from artifacts.catalog import Catalog
from artifacts.profiles import LiveItem, LiveState
from service.homepage import HomepageService
from service.recommender import Recommender
from service.store import MemoryProfileStore, RedisProfileStore
from tests.kept import once_changed, personal_customer
from training.redis_push import push_profiles

NOW = 2_000_000_000.0


@pytest.fixture
async def stores(demo_bundle, redis_url, redis_prefix):
    """(a recommender reading Redis through a near cache, a second worker's store writing to
    the same Redis without one)."""
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0,
                              near_cache_keys=1000)
    other = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    yield Recommender(Catalog(demo_bundle), store), other
    await store.close()
    await other.close()


async def test_an_answer_is_sent_again_while_nothing_changed(stores, profiles):
    recommender, other = stores
    user = personal_customer(profiles)
    first = await recommender.for_user(user, n=5)
    assert first.source == "personal" and not first.degraded
    assert await recommender.for_user(user, n=5) is first
    fresh = await Recommender(recommender.catalog, other).for_user(user, n=5)
    assert msgspec.json.encode(first) == msgspec.json.encode(fresh), "kept as it was built"
    six = await recommender.for_user(user, n=6)
    assert six is not first and await recommender.for_user(user, n=6) is six
    assert await recommender.for_user(user, n=5) is not first, "only the latest variant"


async def test_each_market_asked_for_gets_its_own_answer(stores, profiles):
    recommender, other = stores
    user = personal_customer(profiles)
    fresh = Recommender(recommender.catalog, other)
    markets = [None, *recommender.catalog.markets[:2]]
    for market in [*markets, *markets]:  # each asked for twice, after another market's answer
        answer = await recommender.for_user(user, n=5, market=market)
        assert msgspec.json.encode(answer) == msgspec.json.encode(
            await fresh.for_user(user, n=5, market=market)), market


async def test_a_purchase_written_by_another_worker_changes_the_answer(stores, profiles):
    recommender, other = stores
    user = personal_customer(profiles)
    before = await recommender.for_user(user, n=5)
    bought = before.items[0].item_id
    live = LiveState(purchased=[LiveItem(bought, NOW)], updated=NOW)
    await other.update_live({other.keys.live(user): lambda _: live}, {other.keys.live(user): 60})
    after = await once_changed(lambda: recommender.for_user(user, n=5), before)
    assert bought not in [i.item_id for i in after.items], "what was just bought is left out"
    fresh = await Recommender(recommender.catalog, other).for_user(user, n=5)
    assert msgspec.json.encode(after) == msgspec.json.encode(fresh)


async def test_erasure_by_another_worker_drops_the_answer(stores, profiles):
    recommender, other = stores
    user = personal_customer(profiles)
    before = await recommender.for_user(user, n=5)
    await other.erase_user(user, NOW)
    after = await once_changed(lambda: recommender.for_user(user, n=5), before)
    assert after.source != "personal" and after.notes[0].startswith("unknown customer")
    store = recommender.store
    assert store.near.memo(store.keys.user_keys(user), [None, None, None]) == {}, \
        "nothing of the erased customer's answer is left in the worker"


async def test_the_homepage_and_recommendations_are_kept_side_by_side(stores, profiles):
    recommender, _ = stores
    pages = HomepageService(recommender, clock=lambda: NOW)
    user = personal_customer(profiles)
    answer = await recommender.for_user(user, n=5)
    page = await pages.for_user(user, n=5)
    assert await recommender.for_user(user, n=5) is answer
    assert await pages.for_user(user, n=5) is page



async def test_nothing_the_near_cache_keeps_is_walked_by_the_garbage_collector(stores, profiles):
    """A full collection walks every tracked object: what a worker keeps for each customer
    (values, memo, kept answers, down to their items) must be none of them."""
    recommender, _ = stores
    pages = HomepageService(recommender, clock=lambda: NOW)
    users = sorted(u for u, p in profiles.items() if p.market and len(p.purchased) >= 3)[:20]
    await recommender.for_user(users[0], n=5)  # the first read links the near cache
    for _ in range(500):
        if recommender.store.near.enabled:
            break
        await asyncio.sleep(0.01)
    for user in [*users, "nobody-1"] * 2:  # twice: the first read of each is what is held
        await recommender.for_user(user, n=5)
        await pages.for_user(user, n=5, sections="for_you,trending")
    gc.collect()  # untracks the tuples whose contents are untracked, as any collection does
    held = recommender.store.near._values
    memos = list({id(e.memo): e.memo for e in held.values() if e.memo}.values())  # shared
    kept = [k for memo in memos for k in memo.values()]
    assert {type(k.answer).__name__ for k in kept} == {"Recommendations", "Homepage"}
    assert len(kept) == 2 * len(users), "both answers kept for each known customer"
    tracked = [o for o in [held, *held.values(), *memos] if gc.is_tracked(o)]
    for k in kept:
        fields = [getattr(k.answer, f) for f in k.answer.__struct_fields__]
        tracked += [o for o in [k, k.variant, k.answer, *fields, *getattr(k.answer, "items", ())]
                    if gc.is_tracked(o)]
    assert not tracked, f"{len(tracked)} tracked, e.g. {[type(o).__name__ for o in tracked[:5]]}"


async def test_a_hot_swap_builds_the_answer_again_and_frees_the_old_bundle(stores, profiles,
                                                                           demo_bundle):
    recommender, _ = stores
    user = personal_customer(profiles)
    before = await recommender.for_user(user, n=5)
    await recommender.for_user("nobody-1", n=5)  # the market's list, built for the old bundle
    old = weakref.ref(recommender.catalog)
    recommender.catalog = Catalog(demo_bundle)
    gc.collect()
    assert old() is None, "the answer kept (not asked for since) holds the swapped-out bundle"
    after = await recommender.for_user(user, n=5)
    assert after is not before and await recommender.for_user(user, n=5) is after


async def test_unknown_ids_keep_nothing_and_share_the_markets_list(stores, demo_bundle):
    recommender, _ = stores
    one = await recommender.for_user("nobody-1", n=5)
    two = await recommender.for_user("nobody-2", n=5)
    assert one.notes[0].startswith("unknown customer") and two.user_id == "nobody-2"
    assert one.items is two.items, "built once for the market"
    assert one.notes == two.notes and one.notes is not two.notes
    for market in [None, *recommender.catalog.markets[:2]]:
        for n in (3, 5):  # each list is the one of its market and n
            answer = await recommender.for_user(f"nobody-{n}", n=n, market=market)
            fresh = ranking.for_you(recommender.catalog, None, n=n, market=answer.market)
            assert (answer.market, msgspec.json.encode(answer.items)) == (
                market or recommender.default_market, msgspec.json.encode(fresh.items))
    store = recommender.store
    assert store.near.memo(store.keys.user_keys("nobody-1"), [None, None, None]) == {}, \
        "nothing kept per unknown id"
    recommender.catalog = Catalog(demo_bundle)  # a hot swap
    assert (await recommender.for_user("nobody-1", n=5)).items is not one.items


async def test_without_a_near_cache_nothing_is_kept(demo_bundle, profiles):
    recommender = Recommender(Catalog(demo_bundle),
                              MemoryProfileStore(demo_bundle.profile_records()))
    user = personal_customer(profiles)
    first = await recommender.for_user(user, n=5)
    assert first.source == "personal"
    assert await recommender.for_user(user, n=5) is not first
