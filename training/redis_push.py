"""Bulk writing of batch profiles into Redis, pipelined, under the shared key scheme.

The Redis URL names one server (``redis://``, ``rediss://``, ``unix://``) or a Redis Cluster
through any of its nodes (``redis+cluster://``, ``rediss+cluster://``), as the service's does.

Every push leaves out the customers on the erasure list (``DELETE /v1/users/{id}``, see
:mod:`training.erasures`): a bundle trained before an erasure still holds that customer's
profile, and writing it back would undo the erasure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisClusterException
from tqdm import tqdm

from artifacts.bundle import iter_chunks
from artifacts.profiles import KeyScheme, ProfileRecord, encode_profile

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
PLAIN_SCHEMES = ("redis", "rediss", "unix")
SCHEMES = PLAIN_SCHEMES + tuple(CLUSTER_SCHEMES)


class RedisUrlError(ValueError):
    """A Redis URL the trainer cannot use; the message names what is wrong (never the
    password) and the accepted forms."""


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for an error message."""
    scheme, sep, rest = url.rpartition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}"


def check_url(url: str) -> None:
    """Raise :class:`RedisUrlError` unless ``url`` is a Redis URL of an accepted form.

    Only parses: nothing is connected to, so a caller can check the URL before hours of work.
    """
    accepted = ", ".join(f"{s}://" for s in SCHEMES)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise RedisUrlError(f"Redis URL {_redacted(url)!r} has no scheme; expected one of "
                            f"{accepted} (--redis-url or $RECO_REDIS_URL)")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    if plain is None and scheme not in PLAIN_SCHEMES:
        raise RedisUrlError(f"Redis URL scheme {scheme + '://'!r} is not supported; expected "
                            f"one of {accepted} (--redis-url or $RECO_REDIS_URL)")
    try:
        parse_url(f"{plain}://{rest}" if plain else url)
    except ValueError as exc:
        raise RedisUrlError(f"Redis URL {_redacted(url)!r}: {exc}") from None


def redis_client(url: str) -> redis.Redis | RedisCluster:
    """A client for the server or, for a ``redis+cluster://`` URL, the cluster at ``url``.

    The same URL forms as the service's store (``service.store.redis.open_client``); spelt out
    here too because training and serving share no code outside ``artifacts/``. A URL of
    another form raises :class:`RedisUrlError` (see :func:`check_url`). A cluster that
    cannot be reached raises :class:`redis.ConnectionError`, as a single server does.
    """
    check_url(url)
    scheme, _, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    if plain is None:
        return redis.Redis.from_url(url)
    try:  # connects at once to read the slot map
        return RedisCluster.from_url(f"{plain}://{rest}")
    except RedisClusterException as exc:  # a RedisError, like every other failure to reach it
        raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc


def erased_ids(client: redis.Redis | RedisCluster, keys: KeyScheme) -> set[str]:
    """Every id on the erasure list (one ZRANGE)."""
    return {m.decode() for m in client.zrange(keys.erasures(), 0, -1)}


@dataclass
class PushCounts:
    """How far a push got; updated after every batch, so a caller that stopped the push
    (an exception, a signal) still knows what is in Redis."""

    written: int = 0
    """Profiles written to Redis (and not removed again)."""
    erased: int = 0
    """Profiles left out, or removed again, because their customer is on the erasure list."""


def push_profiles(records: Iterable[ProfileRecord], url: str, *, prefix: str = "reco",
                  batch: int = 2000, total: int | None = None, progress: bool = True,
                  counts: PushCounts | None = None) -> int:
    """Write every record's batch profile to ``<prefix>:v1:{user}:batch``, except those of
    customers on the erasure list; returns the count written (``counts``, when given, also
    gets the count left out).

    The erasure list is read once before the first write, and after each batch the batch's
    customers are looked up in it again: a customer erased while the push runs (the service
    deletes their keys, then lists them) has the profile just written deleted again.
    One pipelined round trip per ``batch`` profiles (no MULTI: each SET is independent, which
    also keeps it valid on Redis Cluster, where the client splits a pipeline per node), and one
    ZMSCORE. A Redis error stops the run with the error; profiles already written stay (they
    are complete values, tagged with their bundle version).
    """
    keys = KeyScheme(prefix)
    counts = counts if counts is not None else PushCounts()
    client = redis_client(url)
    try:
        client.ping()
        erased = erased_ids(client, keys)
        with tqdm(total=total, desc="redis", unit="profile", disable=not progress) as bar:
            for chunk in iter_chunks(records, batch):
                kept = [r for r in chunk if r.user_id not in erased]
                counts.erased += len(chunk) - len(kept)
                if kept:
                    pipe = client.pipeline(transaction=False)
                    for record in kept:
                        pipe.set(keys.batch(record.user_id), encode_profile(record.profile))
                    pipe.execute()
                    counts.written += len(kept)
                    ids = [r.user_id for r in kept]
                    late = [u for u, score in zip(ids, client.zmscore(keys.erasures(), ids))
                            if score is not None]
                    if late:  # erased while this push ran: take back what was just written
                        pipe = client.pipeline(transaction=False)
                        for user in late:  # one DEL each: on a cluster they may sit apart
                            pipe.delete(keys.batch(user))
                        pipe.execute()
                        erased.update(late)
                        counts.written -= len(late)
                        counts.erased += len(late)
                bar.update(len(chunk))
    finally:
        client.close()
    return counts.written
