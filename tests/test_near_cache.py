"""The near cache of page-view reads: its bookkeeping on its own, and with a real Redis, whose
invalidation messages must reach it for writes by other clients, expiry, flushes and lost
connections."""

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from artifacts.profiles import ENCODER, BatchProfile
from service.store import RedisProfileStore
from service.store.near_cache import NearCache
from service.store.pipelined import _Invalidations

KEYS = ["k:batch", "k:live", "k:sent"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _cache(capacity: int = 10, ttl_s: float = 60.0, clock=None) -> NearCache:
    cache = NearCache(capacity, ttl_s, clock=clock or Clock())
    cache.enabled = True
    return cache


def _read(cache: NearCache, keys, values) -> None:
    """One read of ``keys`` that answers ``values``, with nothing in between."""
    cache.fill(keys, values, cache.begin(keys))


def test_a_read_is_kept_and_answers_all_its_keys():
    cache = _cache()
    assert cache.get(KEYS) is None
    _read(cache, KEYS, [b"b", None, None])
    assert cache.get(KEYS) == [b"b", None, None]
    assert cache.get(["k:batch", "other"]) is None  # every key must be held
    assert cache.take_counts() == (1, 2) and cache.take_counts() == (0, 0)


def test_an_invalidation_drops_the_key():
    cache = _cache()
    _read(cache, KEYS, [b"b", None, None])
    cache.invalidate(["k:live"])
    assert cache.get(KEYS) is None
    assert cache.get(["k:batch"]) == [b"b"]


def test_an_invalidation_that_overtakes_a_reply_is_not_undone_by_it():
    """Redis may send the invalidation (its own connection) before the reply it concerns is
    read: the reply, possibly older than the write, must not be kept."""
    cache = _cache()
    epoch = cache.begin(KEYS)
    cache.invalidate(["k:batch"])
    cache.fill(KEYS, [b"old", None, None], epoch)
    assert cache.get(["k:batch"]) is None
    assert cache.get(["k:live", "k:sent"]) == [None, None]  # not invalidated: kept
    _read(cache, KEYS, [b"new", None, None])  # the next read is kept again
    assert cache.get(["k:batch"]) == [b"new"]


def test_two_reads_in_flight_and_an_invalidation_keep_neither():
    cache = _cache()
    first = cache.begin(["k"])
    second = cache.begin(["k"])
    cache.invalidate(["k"])
    cache.fill(["k"], [b"1"], first)
    cache.fill(["k"], [b"2"], second)
    assert cache.get(["k"]) is None
    _read(cache, ["k"], [b"3"])
    assert cache.get(["k"]) == [b"3"]


def test_reads_from_before_a_clear_and_failed_reads_are_not_kept():
    cache = _cache()
    _read(cache, ["a"], [b"1"])
    epoch = cache.begin(["b"])
    cache.clear()
    cache.fill(["b"], [b"2"], epoch)
    assert len(cache) == 0 and cache.get(["a"]) is None and cache.get(["b"]) is None
    cache.fill(["c"], None, cache.begin(["c"]))
    assert len(cache) == 0


def test_off_answers_nothing_and_keeps_nothing():
    cache = _cache()
    cache.enabled = False
    _read(cache, ["a"], [b"1"])
    assert len(cache) == 0
    assert cache.get(["a"]) is None and cache.take_counts() == (0, 0)


def test_values_expire_in_the_second_half_of_the_ttl_spread_out():
    clock = Clock()
    cache = _cache(capacity=1000, ttl_s=5.0, clock=clock)
    keys = [f"k{i}" for i in range(1000)]
    for key in keys:
        _read(cache, [key], [b"1"])
    clock.now += 2.49
    assert all(cache.get([key]) == [b"1"] for key in keys)
    clock.now += 1.25  # three quarters of the TTL: about half are gone, not all or none
    assert 300 < sum(cache.get([key]) is None for key in keys) < 700
    clock.now += 1.27
    assert all(cache.get([key]) is None for key in keys)


def test_the_oldest_read_goes_first_at_capacity():
    cache = _cache(capacity=3)
    for key in "abc":
        _read(cache, [key], [key.encode()])
    _read(cache, ["a"], [b"a2"])  # read again: now the newest
    _read(cache, ["d"], [b"d"])
    assert len(cache) == 3
    assert cache.get(["b"]) is None
    assert cache.get(["a", "c", "d"]) == [b"a2", b"c", b"d"]


def test_invalidation_messages_name_keys_or_flush_everything():
    """What Redis sends on the invalidation channel (RESP2 pub/sub), through the real parser."""
    cache = _cache()
    _read(cache, ["a", "b", "c"], [b"1", b"2", b"3"])
    link = _Invalidations(cache)
    link.data_received(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
                       b"*2\r\n$1\r\na\r\n$1\r\nb\r\n")
    assert cache.get(["a"]) is None and cache.get(["b"]) is None and cache.get(["c"]) == [b"3"]
    link.data_received(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*-1\r\n")
    assert len(cache) == 0  # FLUSHDB / FLUSHALL: everything


def test_a_memo_is_shared_by_the_held_values_and_emptied_when_any_goes():
    clock = Clock()
    cache = _cache(capacity=3, ttl_s=5.0, clock=clock)
    values = [b"b", None, None]
    _read(cache, KEYS, values)
    memo = cache.memo(KEYS, values)
    assert memo == {} and cache.memo(KEYS, values) is memo
    equal = [bytes(bytearray(b"b")), None, None]  # an equal value from another read
    assert cache.memo(KEYS, equal) is memo
    assert cache.memo(KEYS, [b"c", None, None]) is None, "only the values held"
    assert cache.take_counts() == (0, 0), "neither a hit nor a miss"

    def kept(what):
        memo = cache.memo(KEYS, values)
        memo["page"] = what
        return memo

    memo = kept(1)
    cache.invalidate(["k:sent"])  # any one of the keys: Redis says it changed
    assert memo == {} and cache.memo(KEYS, values) is None
    _read(cache, ["k:sent"], [None])
    memo = kept(2)
    clock.now += 5.1  # expired, and read again unchanged: the same values and memo, renewed
    assert cache.memo(KEYS, values) is None
    _read(cache, KEYS, equal)
    assert cache.get(KEYS)[0] is values[0] and memo == {"page": 2}
    assert cache.memo(KEYS, values) is memo
    _read(cache, ["k:live"], [b"changed"])  # read again, changed
    assert memo == {}
    values = [b"b", b"changed", None]
    memo = kept(3)
    _read(cache, ["x"], [b"x"])  # at capacity: the oldest read (k:batch) goes
    assert memo == {} and cache.memo(KEYS, values) is None
    _read(cache, KEYS, values)
    memo = kept(4)
    cache.clear()
    assert memo == {}
    cache.enabled = False
    assert cache.memo(["x"], [b"x"]) is None


def test_a_cache_needs_room_and_a_ttl():
    with pytest.raises(ValueError):
        NearCache(0, 10.0)
    with pytest.raises(ValueError):
        NearCache(10, 0.0)


# -- with a real Redis ------------------------------------------------------------------------

async def _eventually(condition, timeout_s: float = 5.0) -> None:
    """Poll until ``condition()`` holds (the invalidation travels on its own connection)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "Redis's invalidation never came"
        await asyncio.sleep(0.01)


async def _read_after_loss(store, user: str):
    """The customer's record, read as soon as the store answers again: the first read after
    a lost link may meet the closed connection."""
    for _ in range(50):
        try:
            return await store.get_user(user)
        except Exception:
            await asyncio.sleep(0.05)
    return None


@pytest.fixture
async def stores(redis_url, redis_prefix):
    """(a store with a near cache, a plain client writing behind its back)."""
    store = RedisProfileStore(redis_url, prefix=redis_prefix, timeout_s=1.0, near_cache_keys=100)
    other = aioredis.Redis.from_url(redis_url)
    yield store, other
    await store.close()
    await other.aclose()


def _profile(version: str) -> bytes:
    return ENCODER.encode(BatchProfile(bundle_version=version))


async def test_redis_a_second_read_is_answered_in_process(stores):
    store, other = stores
    await other.set(store.keys.batch("u"), _profile("a"))
    assert (await store.get_user("u")).batch.bundle_version == "a"
    hits = store.near.hits
    assert (await store.get_user("u")).batch.bundle_version == "a"
    assert store.near.hits == hits + 1


async def test_redis_another_clients_write_reaches_the_cache(stores):
    store, other = stores
    key = store.keys.batch("u")
    await other.set(key, _profile("a"))
    await store.get_user("u")
    await store.get_session("s")
    assert store.near.get([key]) == [_profile("a")]
    await other.set(key, _profile("b"))
    await _eventually(lambda: store.near.get([key]) is None)
    assert (await store.get_user("u")).batch.bundle_version == "b"
    # a key that did not exist when it was read is tracked too
    await other.set(store.keys.session("s"), b"\x91\x90")
    await _eventually(lambda: store.near.get([store.keys.session("s")]) is None)


async def test_redis_expiry_reaches_the_cache(stores):
    store, other = stores
    key = store.keys.batch("u")
    await other.set(key, _profile("a"), px=200)
    await store.get_user("u")
    assert store.near.get([key]) is not None
    # an expired key is deleted when touched or by Redis's active expiry; either invalidates
    await _eventually(lambda: store.near.get([key]) is None)
    assert (await store.get_user("u")).batch is None


async def test_redis_a_lost_link_empties_the_cache_and_a_new_one_tracks_again(stores):
    store, other = stores
    key = store.keys.batch("u")
    await other.set(key, _profile("a"))
    await store.get_user("u")
    assert store.near.enabled and len(store.near) == 3
    # kill this store's reading connection (its invalidation connection goes with it)
    host, port = store._fast._replies.transport.get_extra_info("sockname")[:2]
    mine = [c for c in await other.client_list() if c["addr"] == f"{host}:{port}"]
    assert len(mine) == 1 and "t" in mine[0]["flags"], "the reader should have tracking on"
    await other.client_kill_filter(_id=mine[0]["id"])
    await _eventually(lambda: not store.near.enabled and len(store.near) == 0)
    await other.set(key, _profile("b"))
    record = await _read_after_loss(store, "u")
    assert record is not None and record.batch.bundle_version == "b"
    assert store.near.enabled
    await other.set(key, _profile("c"))
    await _eventually(lambda: store.near.get([key]) is None)
    assert (await store.get_user("u")).batch.bundle_version == "c"


async def test_redis_refusing_client_tracking_is_read_without_the_cache(redis_url, redis_prefix,
                                                                       caplog):
    """A Redis whose ACL forbids CLIENT (as some managed services do): page views read Redis
    every time instead of failing (degraded)."""
    admin = aioredis.Redis.from_url(redis_url)
    user, password = f"{redis_prefix}-no-client", "not-a-secret"
    await admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*",
                                "+@all", "-client")
    parts = urlsplit(redis_url)
    url = urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))
    store = RedisProfileStore(url, prefix=redis_prefix, timeout_s=1.0, near_cache_keys=100)
    try:
        await admin.set(store.keys.batch("u"), _profile("a"))
        with caplog.at_level("WARNING", logger="service.store.pipelined"):
            assert (await store.get_user("u")).batch.bundle_version == "a"
        assert "near cache off" in caplog.text and "CLIENT" in caplog.text
        assert not store.near.enabled and len(store.near) == 0
        await admin.set(store.keys.batch("u"), _profile("b"))
        assert (await store.get_user("u")).batch.bundle_version == "b"
    finally:
        await store.close()
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()


class _SilencingProxy:
    """A TCP relay to Redis that can make the invalidation connection (the one that sends
    SUBSCRIBE) go silent as a NAT or firewall that forgets a flow does: Redis's side is closed,
    the client's side stays open and hears nothing more."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.links: list[dict] = []
        self.server = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, client_r, client_w) -> None:
        up_r, up_w = await asyncio.open_connection(*self.upstream)
        link = {"client": client_w, "upstream": up_w, "subscriber": False, "silent": False}
        self.links.append(link)
        for source, sink, outbound in ((client_r, up_w, True), (up_r, client_w, False)):
            task = asyncio.ensure_future(self._pipe(source, sink, link, outbound))
            self.tasks.add(task)

    @staticmethod
    async def _pipe(source, sink, link, outbound: bool) -> None:
        try:
            while data := await source.read(65536):
                if outbound and b"SUBSCRIBE" in data:
                    link["subscriber"] = True
                if link["silent"]:
                    continue
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    def silence_subscriber(self) -> None:
        link = next(link for link in self.links if link["subscriber"])
        link["silent"] = True
        link["upstream"].close()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for link in self.links:
            link["client"].close()
            link["upstream"].close()
        self.server.close()


async def test_redis_a_silent_invalidation_link_is_found_and_replaced(redis_url, redis_prefix):
    """Without a FIN or RST, the lost invalidation connection looks alive: the heartbeat must
    notice, empty the cache and link anew, or an erased profile would be served from it."""
    proxy = _SilencingProxy(redis_url)
    port = await proxy.start()
    other = aioredis.Redis.from_url(redis_url)
    store = RedisProfileStore(f"redis://127.0.0.1:{port}/{urlsplit(redis_url).path[1:] or 0}",
                              prefix=redis_prefix, timeout_s=1.0, near_cache_keys=100)
    store._fast.heartbeat_s = 0.2
    try:
        key = store.keys.batch("u")
        await other.set(key, _profile("a"))
        await store.get_user("u")
        assert store.near.get([key]) == [_profile("a")]
        proxy.silence_subscriber()
        await other.delete(key)  # an erasure: this invalidation can no longer arrive
        await _eventually(lambda: not store.near.enabled and len(store.near) == 0, 2.0)
        record = await _read_after_loss(store, "u")
        assert record is not None and record.batch is None
        assert store.near.enabled and store.near.get([key]) == [None]  # a new link
        await other.set(key, _profile("b"))  # ... that hears of writes again
        await _eventually(lambda: store.near.get([key]) is None)
        assert (await store.get_user("u")).batch.bundle_version == "b"
    finally:
        await store.close()
        await other.aclose()
        await proxy.close()
