"""Kept homepages (service/homepage.py): a page answered again only while the bundle, the
customer's stored values in real Redis and the session window say it is still the same page;
and the market homepage of anonymous visitors, kept per bundle."""

import gc
import weakref

import msgspec
import pytest

from artifacts.catalog import Catalog
from artifacts.homepage_rules import HomepageRules
from artifacts.profiles import LiveItem, LiveState
from service.homepage import Homepage, HomepageSection, HomepageService
from service.recommender import Recommender
from service.store import MemoryProfileStore, RedisProfileStore
from tests.kept import once_changed, personal_customer
from training.redis_push import push_profiles


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pages(demo_bundle, redis_url, redis_prefix):
    """(a homepage service reading Redis through a near cache, its clock, a second worker's
    store writing to the same Redis without one)."""
    push_profiles(demo_bundle.profile_records(), redis_url, prefix=redis_prefix, progress=False)
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0,
                              near_cache_keys=1000)
    other = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0)
    clock = Clock(2_000_000_000.0)
    yield HomepageService(Recommender(Catalog(demo_bundle), store), clock=clock), clock, other
    await store.close()
    await other.close()


async def test_a_page_is_answered_again_while_nothing_changed(pages, profiles):
    service, _, _ = pages
    user = personal_customer(profiles)
    first = await service.for_user(user, n=5)
    assert await service.for_user(user, n=5) is first
    sections = msgspec.json.decode(first.sections, type=list[HomepageSection])  # encoded once
    assert sections and msgspec.json.decode(msgspec.json.encode(first), type=Homepage).sections \
        == sections
    other_query = await service.for_user(user, n=6)
    assert other_query is not first and await service.for_user(user, n=6) is other_query
    assert await service.for_user(user, n=5, sections="for_you") is not first


async def test_a_write_by_another_worker_changes_the_page(pages, profiles):
    service, clock, other = pages
    user = personal_customer(profiles)
    before = await service.for_user(user, n=5)
    assert await service.for_user(user, n=5) is before
    item = service.recommender.catalog.ids[0]
    view = LiveState(viewed=[LiveItem(item, clock.now - 5)], updated=clock.now)
    await other.update_live({other.keys.live(user): lambda _: view}, {other.keys.live(user): 60})
    after = await once_changed(lambda: service.for_user(user, n=5), before)
    viewed = [s for s in msgspec.json.decode(after.sections, type=list[HomepageSection])
              if s.key == "recently_viewed"]
    assert [i.item_id for s in viewed for i in s.items] == [item]
    fresh = HomepageService(Recommender(service.recommender.catalog, other), clock=clock)
    assert msgspec.json.encode(after) == msgspec.json.encode(await fresh.for_user(user, n=5))


async def test_erasure_by_another_worker_drops_the_page(pages, profiles):
    service, clock, other = pages
    user = personal_customer(profiles)
    before = await service.for_user(user, n=5)
    assert before.audience == "personal"
    await other.erase_user(user, clock.now)
    after = await once_changed(lambda: service.for_user(user, n=5), before)
    assert after.audience == "unknown_customer" and after.segments == ()
    store = service.recommender.store
    assert store.near.memo(store.keys.user_keys(user), [None, None, None]) == {}, \
        "nothing of the erased customer's page is left in the worker"


async def test_erasure_of_a_customer_known_only_from_events_drops_their_page(pages):
    """No batch profile: the page hangs on values of which Redis reports only the live key's
    deletion; the customer's whole memo goes with it, and no later read brings it back."""
    service, clock, other = pages
    store, user = service.recommender.store, "events-only"
    live_key = other.keys.live(user)
    view = LiveState(viewed=[LiveItem(service.recommender.catalog.ids[0], clock.now - 5)],
                     updated=clock.now)
    await other.update_live({live_key: lambda _: view}, {live_key: 600})
    before = await service.for_user(user, n=5)
    assert before.audience == "personal" and await service.for_user(user, n=5) is before
    memo = store.near.memo(store.keys.user_keys(user), (await store.read_user(user)).values)
    assert memo
    await other.erase_user(user, clock.now)
    after = await once_changed(lambda: service.for_user(user, n=5), before)
    assert after.audience == "unknown_customer"
    assert memo == {}, "the erased customer's page is gone from the worker"
    assert not store.near.memo(store.keys.user_keys(user), [None, None, None])


async def test_a_swapped_out_bundle_is_not_kept_alive_by_kept_pages(pages, profiles,
                                                                     demo_bundle):
    service, _, _ = pages
    user = personal_customer(profiles)
    await service.for_user(user, n=5)
    old = weakref.ref(service.recommender.catalog)
    service.recommender.catalog = Catalog(demo_bundle)  # a hot swap
    service.anonymous(n=5)  # the next page view, of someone else
    gc.collect()
    assert old() is None, "the customer's kept page (not asked for since) holds the old bundle"


async def test_a_new_bundle_builds_the_page_again(pages, profiles, demo_bundle):
    service, _, _ = pages
    user = personal_customer(profiles)
    before = await service.for_user(user, n=5)
    anonymous = service.anonymous(n=5)
    assert service.anonymous(n=5) is anonymous
    service.recommender.catalog = Catalog(demo_bundle)  # a hot swap
    assert await service.for_user(user, n=5) is not before
    assert service.anonymous(n=5) is not anonymous


async def test_the_end_of_the_session_window_ends_a_kept_page(pages, profiles):
    service, clock, other = pages
    user = personal_customer(profiles)
    window = HomepageRules().session_minutes * 60
    item = service.recommender.catalog.ids[0]
    view = LiveState(viewed=[LiveItem(item, clock.now - window + 10)], updated=clock.now)
    await other.update_live({other.keys.live(user): lambda _: view}, {other.keys.live(user): 60})
    page = await service.for_user(user, n=5)
    clock.now += 9.9
    assert await service.for_user(user, n=5) is page
    clock.now += 0.2  # the view left the session: its category is no longer unlocked
    assert await service.for_user(user, n=5) is not page


async def test_unknown_customers_share_the_market_pages_sections(pages):
    service, _, _ = pages
    one = await service.for_user("nobody-1", n=5)
    two = await service.for_user("nobody-2", n=5)
    assert one.audience == two.audience == "unknown_customer"
    assert one.sections is two.sections, "encoded once for the market"
    assert one.sections is service.anonymous(n=5).sections
    store = service.recommender.store
    assert store.near.memo(store.keys.user_keys("nobody-1"), [None, None, None]) == {}, \
        "nothing kept per unknown id"


async def test_without_a_near_cache_nothing_is_kept(demo_bundle, profiles):
    service = HomepageService(Recommender(Catalog(demo_bundle),
                                          MemoryProfileStore(demo_bundle.profile_records())))
    user = personal_customer(profiles)
    first = await service.for_user(user, n=5)
    assert first.audience == "personal"
    assert await service.for_user(user, n=5) is not first
