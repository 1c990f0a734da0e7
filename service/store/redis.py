"""Redis profile store (single node) with a short circuit breaker.

Every call has a socket timeout of a few tens of milliseconds. After a failure the store
answers :class:`StoreUnavailable` at once for ``retry_after`` seconds instead of waiting on a
dead server for every page view; the next call after that tries Redis again, so the service
recovers by itself when Redis returns.
"""

from __future__ import annotations

import logging
import time

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from artifacts.profiles import BatchProfile, KeyScheme, decode_batch, encode_profile
from service.store.base import StoreUnavailable

log = logging.getLogger(__name__)


class RedisProfileStore:
    name = "redis"

    def __init__(self, url: str, *, prefix: str = "reco", timeout_s: float = 0.05,
                 retry_after_s: float = 1.0, client: aioredis.Redis | None = None):
        self.keys = KeyScheme(prefix)
        self.client = client or aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry_on_timeout=False)
        self.retry_after_s = retry_after_s
        self._down_until = 0.0

    def _check(self) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            raise StoreUnavailable("redis marked down after a recent failure")

    def _failed(self, exc: Exception) -> StoreUnavailable:
        if not self._down_until:
            log.warning("redis unavailable (%s): degrading for %.1f s", type(exc).__name__,
                        self.retry_after_s)
        self._down_until = time.monotonic() + self.retry_after_s
        return StoreUnavailable(str(exc))

    def _ok(self) -> None:
        if self._down_until:
            log.info("redis is back")
            self._down_until = 0.0

    async def get_batch(self, user_id: str) -> BatchProfile | None:
        self._check()
        try:
            raw = await self.client.get(self.keys.batch(user_id))
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        self._ok()
        if raw is None:
            return None
        try:
            return decode_batch(raw)
        except msgspec.DecodeError:
            log.error("undecodable batch profile for a customer; treating as missing")
            return None

    async def put_batch(self, user_id: str, profile: BatchProfile) -> None:
        self._check()
        try:
            await self.client.set(self.keys.batch(user_id), encode_profile(profile))
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        self._ok()

    async def ping(self) -> bool:
        """True when Redis answers now (ignores the breaker, so readiness sees recovery)."""
        try:
            ok = bool(await self.client.ping())
        except (RedisError, OSError):
            return False
        self._ok()
        return ok

    async def close(self) -> None:
        await self.client.aclose()
