"""One contract suite for every profile store backend: the embedded store and real Redis."""

import pytest
import redis

from artifacts.profiles import BatchProfile, KeyScheme, ProfileRecord, encode_profile
from service.store import MemoryProfileStore, RedisProfileStore, StoreUnavailable


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    if request.param == "memory":
        yield MemoryProfileStore(prefix="contract")
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    s = RedisProfileStore(url, prefix=prefix, timeout_s=1.0)
    yield s
    await s.close()


PROFILE = BatchProfile(bundle_version="v1", market="SE", candidates=["a", "b"], scores=[0.9, 0.5],
                       sources=["personal", "also_bought"], purchased=["c"],
                       factors=b"\x00\x00\x80?", n_purchases=3)


async def test_missing_customer_is_none(store):
    assert await store.get_batch("nobody") is None


async def test_round_trip(store):
    await store.put_batch("u1", PROFILE)
    got = await store.get_batch("u1")
    assert got == PROFILE
    assert got.factor_vector().tolist() == [1.0]


async def test_overwrite_replaces(store):
    await store.put_batch("u1", PROFILE)
    await store.put_batch("u1", BatchProfile(bundle_version="v2"))
    got = await store.get_batch("u1")
    assert got.bundle_version == "v2" and got.candidates == []


async def test_customers_are_separate(store):
    await store.put_batch("u1", PROFILE)
    assert await store.get_batch("u2") is None


async def test_ping(store):
    assert await store.ping() is True


def test_memory_store_seeds_from_records():
    store = MemoryProfileStore([ProfileRecord("u9", PROFILE)])
    assert len(store) == 1


async def test_redis_keys_follow_the_scheme(redis_url, redis_prefix):
    store = RedisProfileStore(redis_url, prefix=redis_prefix)
    await store.put_batch("u1", PROFILE)
    await store.close()
    client = redis.Redis.from_url(redis_url)
    assert client.get(f"{redis_prefix}:v1:{{u1}}:batch") == encode_profile(PROFILE)
    assert KeyScheme(redis_prefix).batch("u1") == f"{redis_prefix}:v1:{{u1}}:batch"
    client.close()


async def test_redis_profile_from_older_writer_decodes(redis_url, redis_prefix):
    """Schema evolution: a value with only the required field still decodes with defaults."""
    import msgspec

    client = redis.Redis.from_url(redis_url)
    client.set(KeyScheme(redis_prefix).batch("old"), msgspec.msgpack.encode({"bundle_version": "v0"}))
    client.close()
    store = RedisProfileStore(redis_url, prefix=redis_prefix)
    got = await store.get_batch("old")
    await store.close()
    assert got == BatchProfile(bundle_version="v0")


async def test_unreachable_redis_raises_store_unavailable_then_breaks(dead_redis_url):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.2, retry_after_s=30)
    with pytest.raises(StoreUnavailable):
        await store.get_batch("u1")
    with pytest.raises(StoreUnavailable, match="marked down"):
        await store.get_batch("u1")
    assert await store.ping() is False
    await store.close()
