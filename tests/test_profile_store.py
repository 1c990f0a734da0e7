"""One contract suite for every profile store backend: the embedded store, real Redis (with and
without the near cache of page-view reads), and a real Redis Cluster of 3 masters
(``redis_cluster_url``: started locally for the session)."""

import asyncio

import msgspec
import pytest

from artifacts.profiles import (BatchProfile, KeyScheme, LiveItem, LiveState, ProfileRecord,
                                SentLog, SentMail, encode_profile)
from service.store import MemoryProfileStore, RedisProfileStore, StoreUnavailable
from service.store.redis import cluster_seed_url
from training.redis_push import redis_client

REDIS_BACKENDS = ["redis", "redis-cluster"]


def _redis_backend(request, backend: str) -> tuple[str, str]:
    """(url, per-test prefix) of a real single server or cluster."""
    if backend in ("redis", "redis-near"):
        return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return (request.getfixturevalue("redis_cluster_url"),
            request.getfixturevalue("redis_cluster_prefix"))


@pytest.fixture(params=["memory", "redis-near", *REDIS_BACKENDS])
async def store(request):
    if request.param == "memory":
        yield MemoryProfileStore(prefix="contract")
        return
    url, prefix = _redis_backend(request, request.param)
    near = 1000 if request.param == "redis-near" else 0
    s = RedisProfileStore(url, prefix=prefix, timeout_s=1.0, near_cache_keys=near)
    yield s
    await s.close()


@pytest.fixture(params=REDIS_BACKENDS)
def redis_backend(request):
    """(url, prefix, plain synchronous client) of a real single server or cluster."""
    url, prefix = _redis_backend(request, request.param)
    client = redis_client(url)
    yield url, prefix, client
    client.close()


PROFILE = BatchProfile(bundle_version="v1", market="SE", candidates=["a", "b"], scores=[0.9, 0.5],
                       sources=["personal", "also_bought"], purchased=["c"],
                       factors=b"\x00\x00\x80?", n_purchases=3)
SENT = SentLog(campaigns={"weekly": [SentMail(ts=1.0, items=["a"])]})
DAY = 86_400.0


def _sent(current: SentLog | None) -> SentLog:
    """A sent-log mutation: whatever was there, the log is SENT."""
    return SENT


def _viewed(item: str):
    """A live mutation: prepend ``item`` to the viewed list (creating the state if absent)."""
    def mutate(current: LiveState | None) -> LiveState:
        current = current or LiveState()
        return msgspec.structs.replace(current, viewed=[LiveItem(item, 1.0), *current.viewed])
    return mutate


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


async def test_get_user_and_get_users_read_every_part_in_order(store):
    await store.put_batch("u1", PROFILE)
    await store.update_live({store.keys.live("u1"): _viewed("i1")}, {store.keys.live("u1"): DAY})
    await store.update_sent({"u1": _sent, "u3": _sent}, ttl_s=DAY)
    await store.put_batch("u2", BatchProfile(bundle_version="v2"))

    one = await store.get_user("u1")
    assert one.batch == PROFILE and [v.item_id for v in one.live.viewed] == ["i1"]
    assert one.sent == SENT
    # customers spread over slots (and, on a cluster, over nodes); answers keep the order asked
    many = await store.get_users(["u3", "nobody", "u1", "u2"])
    assert [r.batch.bundle_version if r.batch else None for r in many] == [None, None, "v1", "v2"]
    assert many[0].sent == SENT and many[0].live is None and many[2] == one
    assert many[1] == (None, None, None)
    assert await store.get_users([]) == []


async def test_concurrent_get_users_are_each_answered(store):
    """Reads issued together (one pipeline on Redis) each get their own customer's answer."""
    for k in range(20):
        await store.put_batch(f"c{k}", BatchProfile(bundle_version=f"v{k}"))
    got = await asyncio.gather(*(store.get_user(f"c{k}") for k in range(20)),
                               store.get_user("nobody"))
    assert [r.batch.bundle_version for r in got[:20]] == [f"v{k}" for k in range(20)]
    assert got[20].batch is None


async def test_update_live_many_subjects_and_sessions_at_once(store):
    keys = store.keys
    subjects = [keys.live("u1"), keys.live("u2"), keys.session("s1"), keys.live("u3")]
    await store.update_live({k: _viewed("i1") for k in subjects}, {k: DAY for k in subjects})
    # None leaves the value as it is (here: absent)
    await store.update_live({keys.live("u4"): lambda current: None}, {keys.live("u4"): DAY})
    await store.update_live({keys.live("u1"): _viewed("i2"), keys.session("s1"): _viewed("i3")},
                            {keys.live("u1"): DAY, keys.session("s1"): 3600})
    assert [v.item_id for v in (await store.get_user("u1")).live.viewed] == ["i2", "i1"]
    assert [v.item_id for v in (await store.get_user("u2")).live.viewed] == ["i1"]
    assert [v.item_id for v in (await store.get_session("s1")).viewed] == ["i3", "i1"]
    assert (await store.get_user("u4")).live is None
    assert await store.get_session("nobody") is None


async def test_every_read_sees_the_writes_before_it(store):
    """Read, write, read again, for each kind of write: no read answers an older value (the
    near cache of page-view reads must not, on the process that wrote)."""
    keys = store.keys
    assert await store.get_user("rw") == (None, None, None)
    assert await store.get_session("rw-s") is None
    await store.put_batch("rw", PROFILE)
    assert (await store.get_user("rw")).batch == PROFILE
    await store.update_live({keys.live("rw"): _viewed("i1"), keys.session("rw-s"): _viewed("i2")},
                            {keys.live("rw"): DAY, keys.session("rw-s"): DAY})
    assert [v.item_id for v in (await store.get_user("rw")).live.viewed] == ["i1"]
    assert [v.item_id for v in (await store.get_session("rw-s")).viewed] == ["i2"]
    await store.update_sent({"rw": _sent}, ttl_s=DAY)
    assert (await store.get_user("rw")).sent == SENT
    await store.put_batch("rw", BatchProfile(bundle_version="v2"))
    assert (await store.get_user("rw")).batch.bundle_version == "v2"
    await store.erase_user("rw", now=1.0)
    assert await store.get_user("rw") == (None, None, None)


async def test_concurrent_live_writers_all_land(store):
    """Compare-and-set: writers racing on the same keys lose no update."""
    keys = [store.keys.live("race-a"), store.keys.live("race-b"), store.keys.session("race-s")]
    writers = [store.update_live({k: _viewed(f"i{n}") for k in keys}, {k: DAY for k in keys})
               for n in range(5)]
    await asyncio.gather(*writers)
    for state in [(await store.get_user("race-a")).live, (await store.get_user("race-b")).live,
                  await store.get_session("race-s")]:
        assert sorted(v.item_id for v in state.viewed) == [f"i{n}" for n in range(5)]


async def test_erase_user_removes_customer_and_linked_sessions(store):
    keys = store.keys
    await store.put_batch("gone", PROFILE)
    await store.update_live({keys.session("gone-s"): _viewed("i1")}, {keys.session("gone-s"): 60})

    def linked(current):
        return msgspec.structs.replace(_viewed("i2")(current), sessions=["gone-s"])

    await store.update_live({keys.live("gone"): linked}, {keys.live("gone"): DAY})
    await store.update_sent({"gone": _sent}, ttl_s=DAY)
    await store.put_batch("stays", PROFILE)

    assert await store.erase_user("gone", now=123.0) == 4
    assert await store.get_user("gone") == (None, None, None)
    assert await store.get_session("gone-s") is None
    assert await store.get_batch("stays") == PROFILE
    assert "gone" in await store.erased_users()
    assert await store.erase_user("never-there", now=124.0) == 0
    assert set(await store.erased_users()) >= {"gone", "never-there"}
    assert await store.erased_among(["stays", "gone", "never-there", "other"]) == {
        "gone", "never-there"}
    assert await store.erased_among([]) == set()


async def test_concurrent_sent_log_updates_all_land(store):
    def mailed(n: int):
        def mutate(current: SentLog | None) -> SentLog:
            mails = current.campaigns.get("w", []) if current else []
            return SentLog(campaigns={"w": [SentMail(float(n), [f"i{n}"]), *mails]})
        return mutate

    await asyncio.gather(*(store.update_sent({"race-u": mailed(n)}, ttl_s=DAY)
                           for n in range(5)))
    log = (await store.get_user("race-u")).sent
    assert sorted(m.items[0] for m in log.campaigns["w"]) == [f"i{n}" for n in range(5)]


async def test_delete_sessions_deletes_only_those(store):
    keys = store.keys
    for s in ("del-a", "del-b", "del-keep"):
        await store.update_live({keys.session(s): _viewed("i1")}, {keys.session(s): 60})
    assert await store.get_session("del-a") is not None  # read: a near cache holds it
    assert await store.delete_sessions(["del-a", "del-b", "del-never"]) == 2
    assert await store.get_session("del-a") is None and await store.get_session("del-b") is None
    assert await store.get_session("del-keep") is not None
    assert await store.delete_sessions([]) == 0


def test_memory_store_seeds_from_records():
    store = MemoryProfileStore([ProfileRecord("u9", PROFILE)])
    assert len(store) == 1


def test_cluster_url_scheme():
    assert cluster_seed_url("redis+cluster://10.0.0.5:7000") == "redis://10.0.0.5:7000"
    assert cluster_seed_url("rediss+cluster://:pw@h:7000/0") == "rediss://:pw@h:7000/0"
    assert cluster_seed_url("redis://127.0.0.1:6379/0") is None
    assert cluster_seed_url("unix:///run/redis.sock") is None


async def test_redis_keys_follow_the_scheme(redis_backend):
    url, prefix, client = redis_backend
    store = RedisProfileStore(url, prefix=prefix)
    await store.put_batch("u1", PROFILE)
    await store.update_live({store.keys.live("u1"): _viewed("i1")},
                            {store.keys.live("u1"): 3600})
    await store.close()
    assert client.get(f"{prefix}:v1:{{u1}}:batch") == encode_profile(PROFILE)
    assert KeyScheme(prefix).batch("u1") == f"{prefix}:v1:{{u1}}:batch"
    assert 0 < client.ttl(KeyScheme(prefix).live("u1")) <= 3600


async def test_redis_profile_from_older_writer_decodes(redis_backend):
    """Schema evolution: a value with only the required field still decodes with defaults."""
    url, prefix, client = redis_backend
    client.set(KeyScheme(prefix).batch("old"), msgspec.msgpack.encode({"bundle_version": "v0"}))
    store = RedisProfileStore(url, prefix=prefix)
    got = await store.get_batch("old")
    await store.close()
    assert got == BatchProfile(bundle_version="v0")


async def test_live_writes_survive_redis_losing_its_scripts(redis_backend):
    """A restarted server (or a new cluster master) has no scripts: the store loads its
    compare-and-set again, on every master, and the write still lands."""
    url, prefix, client = redis_backend
    store = RedisProfileStore(url, prefix=prefix, timeout_s=1.0)
    keys = [store.keys.live(f"s{k}") for k in range(6)]
    await store.update_live({k: _viewed("i1") for k in keys}, {k: DAY for k in keys})
    client.script_flush()  # on a cluster: every master
    await store.update_live({k: _viewed("i2") for k in keys}, {k: DAY for k in keys})
    states = await store.get_users([f"s{k}" for k in range(6)])
    await store.close()
    assert [[v.item_id for v in r.live.viewed] for r in states] == [["i2", "i1"]] * 6


async def test_unreachable_redis_raises_store_unavailable_then_breaks(dead_redis_url):
    store = RedisProfileStore(dead_redis_url, timeout_s=0.2, retry_after_s=30)
    with pytest.raises(StoreUnavailable):
        await store.get_batch("u1")
    with pytest.raises(StoreUnavailable, match="marked down"):
        await store.get_batch("u1")
    assert await store.ping() is False
    await store.close()


async def test_unreachable_cluster_raises_store_unavailable_then_breaks(dead_redis_url):
    url = dead_redis_url.replace("redis://", "redis+cluster://").removesuffix("/0")
    store = RedisProfileStore(url, timeout_s=0.2, retry_after_s=30)
    assert store.cluster and store.name == "redis-cluster"
    with pytest.raises(StoreUnavailable):
        await store.get_user("u1")
    with pytest.raises(StoreUnavailable, match="marked down"):
        await store.get_user("u1")
    with pytest.raises(StoreUnavailable):
        await store.update_live({store.keys.live("u1"): _viewed("i1")},
                                {store.keys.live("u1"): DAY})
    assert await store.ping() is False
    await store.close()
