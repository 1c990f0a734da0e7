"""Bulk writing of batch profiles into Redis, pipelined, under the shared key scheme.

The Redis URL names one server (``redis://``, ``rediss://``) or a Redis Cluster through any of
its nodes (``redis+cluster://``, ``rediss+cluster://``), as the service's does.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from tqdm import tqdm

from artifacts.bundle import iter_chunks
from artifacts.profiles import KeyScheme, ProfileRecord, encode_profile


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def redis_client(url: str) -> redis.Redis | RedisCluster:
    """A client for the server or, for a ``redis+cluster://`` URL, the cluster at ``url``.

    The same URL forms as the service's store (``service.store.redis.open_client``); spelt out
    here too because training and serving share no code outside ``artifacts/``. A cluster that
    cannot be reached raises :class:`redis.ConnectionError`, as a single server does.
    """
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    if plain is None:
        return redis.Redis.from_url(url)
    try:  # connects at once to read the slot map
        return RedisCluster.from_url(f"{plain}://{rest}")
    except RedisClusterException as exc:  # a RedisError, like every other failure to reach it
        raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc


def push_profiles(records: Iterable[ProfileRecord], url: str, *, prefix: str = "reco",
                  batch: int = 2000, total: int | None = None, progress: bool = True) -> int:
    """Write every record's batch profile to ``<prefix>:v1:{user}:batch``; returns the count.

    One pipelined round trip per ``batch`` profiles (no MULTI: each SET is independent, which
    also keeps it valid on Redis Cluster, where the client splits a pipeline per node).
    A Redis error stops the run with the error; profiles already written stay (they are
    complete values, tagged with their bundle version).
    """
    keys = KeyScheme(prefix)
    client = redis_client(url)
    written = 0
    try:
        client.ping()
        with tqdm(total=total, desc="redis", unit="profile", disable=not progress) as bar:
            for chunk in iter_chunks(records, batch):
                pipe = client.pipeline(transaction=False)
                for record in chunk:
                    pipe.set(keys.batch(record.user_id), encode_profile(record.profile))
                pipe.execute()
                written += len(chunk)
                bar.update(len(chunk))
    finally:
        client.close()
    return written
