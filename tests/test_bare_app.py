"""The load benchmark's baselines (benchmarks/bare_app.py): the bare answer, and the floor of a
personal page view, which must really read the customer's profile from Redis."""

from __future__ import annotations

import msgspec
import redis
from litestar.testing import AsyncTestClient

from benchmarks import bare_app


def _mget_calls(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))
    finally:
        client.close()


async def test_profile_floor_reads_the_profile_and_answers_like_bare(monkeypatch, redis_url,
                                                                     redis_prefix):
    monkeypatch.setenv(bare_app.REDIS_URL_ENV, redis_url)
    monkeypatch.setenv(bare_app.REDIS_PREFIX_ENV, redis_prefix)
    async with AsyncTestClient(app=bare_app.create_app()) as client:
        bare = await client.get("/bare")
        before = _mget_calls(redis_url)
        floors = [await client.get(f"/bare/users/c{i:05d}") for i in range(3)]
        after = _mget_calls(redis_url)
    assert bare.status_code == 200
    assert [f.status_code for f in floors] == [200] * 3
    assert all(msgspec.json.decode(f.content) == msgspec.json.decode(bare.content)
               for f in floors)
    assert after - before >= 1  # coalesced: one pipeline may carry all three reads


async def test_profile_floor_without_redis_is_503(monkeypatch):
    monkeypatch.delenv(bare_app.REDIS_URL_ENV, raising=False)
    async with AsyncTestClient(app=bare_app.create_app()) as client:
        assert (await client.get("/bare")).status_code == 200
        response = await client.get("/bare/users/c00001")
    assert response.status_code == 503
    assert bare_app.REDIS_URL_ENV in response.text
