"""Redis profile store, single node or Redis Cluster, with a short circuit breaker.

Every call has a socket timeout of a few tens of milliseconds. After a failure the store answers
:class:`StoreUnavailable` at once for ``retry_after`` seconds instead of waiting on a dead server
for every page view; the next call after that tries Redis again, so the service recovers by
itself when Redis returns.

The URL says which: ``redis://`` or ``rediss://`` is one server, ``redis+cluster://`` or
``rediss+cluster://`` is a Redis Cluster reached through any of its nodes (see
:func:`open_client`). Cluster safety: every multi-key command (MGET, DEL) names keys of one
customer only, which share a hash tag and so a slot; live state is updated with a
compare-and-set script on a single key; reads of several customers are pipelines of
per-customer commands, which the cluster client sends to each node as one pipeline.

redis-py's cluster pipeline refuses its ``mget()`` and ``evalsha()`` methods because they could
name keys of several slots. Ours name one customer's keys or one key, and the pipeline checks
each command's keys map to one slot, so pipelines send them as plain commands
(``execute_command("MGET", ...)``), the same on a single server (where that is also what
``mget()`` does, minus its argument handling).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from artifacts.profiles import (ENCODER, BatchProfile, KeyScheme, LiveState,
                                decode_batch, decode_live, decode_sent)
from service.metrics import REDIS_ERRORS_TOTAL
from service.store.base import (LiveMutation, RawUser, SentMutation, StoreUnavailable,
                                UserRecord)
from service.store.near_cache import NearCache
from service.store.pipelined import PipelinedReader

log = logging.getLogger(__name__)
T = TypeVar("T")

# Set KEYS[1] to ARGV[2] with TTL ARGV[3] only if it still holds the value whose SHA-1 is
# ARGV[1] ('' = absent): a compare-and-set that ships a digest, not the old value.
_CAS = """
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or (cur ~= false and redis.sha1hex(cur) == ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""
MAX_CAS_ROUNDS = 8
MAX_COALESCED = 256
#: What a failing Redis raises: server and connection errors, a cluster the client cannot map.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)
#: URL schemes naming a Redis Cluster, and the plain scheme of their seed node.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
#: Connections per cluster node and client (a single-node client's pool is unbounded).
CLUSTER_MAX_CONNECTIONS = 1024


def cluster_seed_url(url: str) -> str | None:
    """The plain URL of the seed node when ``url`` names a Redis Cluster, else ``None``.

    ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) names a cluster through any
    one of its nodes; the client discovers the others and the slot map from it.
    """
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    return f"{plain}://{rest}" if plain else None


def open_client(url: str, *, timeout_s: float, retries: int | None = None
                ) -> aioredis.Redis | RedisCluster:
    """An asyncio client for a single server or, per :func:`cluster_seed_url`, a cluster.

    ``timeout_s`` bounds connecting and each reply. ``retries`` (cluster only) is how often a
    command that met a connection error or a cluster in failover is tried again after the
    client re-reads the slot map; ``None`` keeps redis-py's default. A single server's client
    is built exactly as it always was (no retry on timeout).
    """
    seed = cluster_seed_url(url)
    if seed is None:
        return aioredis.Redis.from_url(url, socket_timeout=timeout_s,
                                       socket_connect_timeout=timeout_s, retry_on_timeout=False)
    extra = {} if retries is None else {"retry": Retry(NoBackoff(), retries)}
    return RedisCluster.from_url(seed, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                 max_connections=CLUSTER_MAX_CONNECTIONS, **extra)


class _ReadCoalescer:
    """Sends the MGETs issued during one event-loop tick as one pipeline.

    Under load a worker has dozens of requests in flight; each paying its own round trip
    through the client costs ~3x the CPU of sharing one pipeline (measured: 133 vs 46 us per
    read with 32 in flight). A lone request waits one loop tick more, i.e. microseconds.
    """

    def __init__(self, client: aioredis.Redis | RedisCluster, fast: PipelinedReader | None):
        self.client = client
        self.fast = fast
        self._pending: list[tuple[list[str], asyncio.Future]] = []

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((keys, future))
        if len(self._pending) >= MAX_COALESCED:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            asyncio.ensure_future(self._send(batch))

    async def _send(self, batch: list[tuple[list[str], asyncio.Future]]) -> None:
        try:
            results = await self._mget_all([keys for keys, _ in batch])
        except BaseException as exc:  # hand every waiter the failure, including cancellation
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else
                                         RedisError(f"pipeline cancelled: {exc!r}"))
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

    async def _mget_all(self, key_lists: list[list[str]]) -> list[list[bytes | None]]:
        """One MGET per key list, pipelined: through :class:`PipelinedReader` on a plain
        server, through the client's pipeline on a cluster (it routes each MGET by slot)."""
        if self.fast is not None:
            return await self.fast.mget_many(key_lists)
        pipe = self.client.pipeline(transaction=False)
        for keys in key_lists:
            pipe.execute_command("MGET", *keys)
        return await pipe.execute()


def _decode(raw: bytes | None, decode: Callable[[bytes], T]) -> T | None:
    if raw is None:
        return None
    try:
        return decode(raw)
    except msgspec.DecodeError:
        log.error("undecodable value in the profile store; treating it as missing")
        return None


class RedisProfileStore:
    """Profiles in one Redis server or a Redis Cluster, as ``url`` says (see :func:`open_client`)."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "reco", timeout_s: float = 0.05,
                 write_timeout_s: float = 2.0, retry_after_s: float = 1.0,
                 near_cache_keys: int = 0, near_cache_ttl_s: float = 60.0):
        """``near_cache_keys`` > 0 keeps up to that many page-view values in the process,
        kept correct by Redis's invalidation messages (:mod:`service.store.near_cache`); a
        single server only (a cluster's reads all go to Redis)."""
        self.keys = KeyScheme(prefix)
        self.cluster = cluster_seed_url(url) is not None
        if self.cluster:
            self.name = "redis-cluster"
        # page-view reads: fail fast and degrade (on a cluster: no retry, the breaker and the
        # next call after it re-read the slot map); writes (events, picks logs, erasure): a
        # caller that can retry, so a pipeline of a few hundred commands may take its time
        self.client = open_client(url, timeout_s=timeout_s, retries=0)
        self.writer = open_client(url, timeout_s=max(write_timeout_s, timeout_s))
        # several customers' live keys at once: one MGET on a single server; per slot on a
        # cluster (each customer's keys share a slot, different customers mostly do not)
        self._mget_across = self.writer.mget_nonatomic if self.cluster else self.writer.mget
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._cas_sha: str | None = None
        pool = None if self.cluster else self.client.connection_pool
        fast = pool is not None and PipelinedReader.supports(pool)
        self.near = (NearCache(near_cache_keys, near_cache_ttl_s)
                     if fast and near_cache_keys > 0 else None)
        self._fast = (PipelinedReader.for_pool(pool, timeout_s=timeout_s, near=self.near)
                      if fast else None)
        self._reads = _ReadCoalescer(self.client, self._fast)

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        """A read: skipped while the breaker is open, and a failure opens it."""
        if self._down_until and time.monotonic() < self._down_until:
            raise StoreUnavailable("redis marked down after a recent failure")
        try:
            result = await op()
        except REDIS_ERRORS as exc:
            REDIS_ERRORS_TOTAL.labels("read").inc()
            if not self._down_until:
                log.warning("redis unavailable (%s): degrading for %.1f s", type(exc).__name__,
                            self.retry_after_s)
            self._down_until = time.monotonic() + self.retry_after_s
            raise StoreUnavailable(str(exc)) from exc
        if self._down_until:
            log.info("redis is back")
            self._down_until = 0.0
        return result

    async def _write(self, op: Callable[[], Awaitable[T]]) -> T:
        """A write: always tried; a failure is the caller's (who can retry), not the breaker's."""
        try:
            return await op()
        except REDIS_ERRORS as exc:
            REDIS_ERRORS_TOTAL.labels("write").inc()
            raise StoreUnavailable(str(exc)) from exc

    async def get_batch(self, user_id: str) -> BatchProfile | None:
        raw = await self._call(lambda: self.client.get(self.keys.batch(user_id)))
        return _decode(raw, decode_batch)

    def _forget(self, keys: Sequence[str]) -> None:
        """This process wrote ``keys``: its next read of them goes to Redis (Redis's own
        invalidation message may come after that read)."""
        if self.near is not None:
            self.near.invalidate(keys)

    async def get_user(self, user_id: str) -> UserRecord:
        return self.decode_user(await self._page_view_read(self.keys.user_keys(user_id)))

    async def read_user(self, user_id: str) -> RawUser:
        keys = self.keys.user_keys(user_id)
        raw = await self._page_view_read(keys)
        return RawUser(raw, self.near.memo(keys, raw) if self.near is not None else None)

    async def _page_view_read(self, keys: list[str]) -> list[bytes | None]:
        """The values of ``keys``: from the near cache, else one (coalesced) MGET."""
        raw = self.near.get(keys) if self.near is not None else None
        if raw is None:
            raw = await self._call(lambda: self._reads.mget(keys))
        return raw

    def decode_user(self, values: list[bytes | None]) -> UserRecord:
        return UserRecord(_decode(values[0], decode_batch), _decode(values[1], decode_live),
                          _decode(values[2], decode_sent))

    async def get_users(self, user_ids: Sequence[str]) -> list[UserRecord]:
        async def read():
            pipe = self.client.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.execute_command("MGET", *self.keys.user_keys(user_id))
            return await pipe.execute()

        rows = await self._call(read)
        return [self.decode_user(row) for row in rows]

    async def get_session(self, session_id: str) -> LiveState | None:
        # a page view (the size for an anonymous visitor): coalesced like a customer's read
        raw = await self._page_view_read([self.keys.session(session_id)])
        return _decode(raw[0], decode_live)

    async def put_batch(self, user_id: str, profile: BatchProfile) -> None:
        try:
            await self._call(lambda: self.client.set(self.keys.batch(user_id),
                                                     ENCODER.encode(profile)))
        finally:
            self._forget([self.keys.batch(user_id)])

    async def update_live(self, mutations: dict[str, LiveMutation], ttl_s: dict[str, float]) -> None:
        try:
            await self._compare_and_set(mutations, ttl_s, decode_live, "live state")
        finally:
            self._forget(list(mutations))

    async def update_sent(self, mutations: dict[str, SentMutation], ttl_s: float) -> None:
        keys = {self.keys.sent(user_id): mutate for user_id, mutate in mutations.items()}
        try:
            await self._compare_and_set(keys, dict.fromkeys(keys, ttl_s), decode_sent,
                                        "sent log")
        finally:
            self._forget(list(keys))

    async def _compare_and_set(self, mutations: dict[str, Callable], ttl_s: dict[str, float],
                               decode: Callable, what: str) -> None:
        """Apply each mutation to the value at its key by compare-and-set, reading again and
        calling the mutation again for the keys a concurrent writer changed meanwhile."""
        pending = dict(mutations)
        for _ in range(MAX_CAS_ROUNDS):
            if not pending:
                return
            keys = list(pending)
            current = await self._write(lambda: self._mget_across(keys))
            writes = []
            for key, raw in zip(keys, current):
                new = pending[key](_decode(raw, decode))
                if new is None:
                    del pending[key]
                else:
                    digest = hashlib.sha1(raw).hexdigest() if raw is not None else ""
                    writes.append((key, digest, ENCODER.encode(new)))
            if not writes:
                return

            async def write():
                if self._cas_sha is None:
                    self._cas_sha = await self.writer.script_load(_CAS)
                pipe = self.writer.pipeline(transaction=False)
                for key, digest, new in writes:
                    pipe.execute_command("EVALSHA", self._cas_sha, 1, key, digest, new,
                                         max(1, int(ttl_s[key])))
                results = await pipe.execute(raise_on_error=False)
                # NOSCRIPT: a server restarted (or a cluster node joined) without the script;
                # that key was not written: load the script again (on every master) and retry
                for result in results:
                    if isinstance(result, NoScriptError):
                        self._cas_sha = None
                    elif isinstance(result, Exception):
                        raise result
                return [0 if isinstance(r, Exception) else r for r in results]

            applied = await self._write(write)
            for (key, _, _), ok in zip(writes, applied):
                if ok:
                    del pending[key]
        raise StoreUnavailable(f"{what} of {len(pending)} key(s) kept changing under "
                               "concurrent writers; retry the request")

    async def delete_sessions(self, session_ids: Sequence[str]) -> int:
        deleted = 0
        for session_id in session_ids:  # one key at a time: on a cluster, each in its slot
            key = self.keys.session(session_id)
            try:
                deleted += await self._write(lambda k=key: self.writer.delete(k))
            finally:
                self._forget([key])
        return int(deleted)

    async def erase_user(self, user_id: str, now: float) -> int:
        try:
            return await self._erase_user(user_id, now)
        finally:
            self._forget(self.keys.user_keys(user_id))

    async def _erase_user(self, user_id: str, now: float) -> int:
        w = self.writer
        # listed first: a profile push running meanwhile checks the list after each batch
        # and takes back what it wrote for a listed customer (training.redis_push)
        await self._write(lambda: w.zadd(self.keys.erasures(), {user_id: now}))
        live = _decode(await self._write(lambda: w.get(self.keys.live(user_id))), decode_live)
        deleted = await self._write(lambda: w.delete(*self.keys.user_keys(user_id)))
        deleted += await self.delete_sessions(live.sessions if live else [])
        return int(deleted)

    async def erased_users(self) -> list[str]:
        raw = await self._call(lambda: self.client.zrange(self.keys.erasures(), 0, -1))
        return [r.decode() for r in raw]

    async def erased_among(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        ids = list(user_ids)
        scores = await self._call(lambda: self.client.zmscore(self.keys.erasures(), ids))
        return {u for u, score in zip(ids, scores) if score is not None}

    async def ping(self) -> bool:
        """True when Redis answers now (ignores the breaker, so readiness sees recovery); on a
        cluster, when every master answers (a plain PING would ask one node only)."""
        try:
            if self.cluster:
                ok = bool(await self.client.ping(target_nodes=RedisCluster.PRIMARIES))
            else:
                ok = bool(await self.client.ping())
        except REDIS_ERRORS:
            return False
        self._down_until = 0.0
        return ok

    async def close(self) -> None:
        if self._fast is not None:
            await self._fast.close()
        await self.client.aclose()
        await self.writer.aclose()
