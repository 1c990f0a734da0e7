"""Bulk writing of batch profiles into Redis, pipelined, under the shared key scheme."""

from __future__ import annotations

from collections.abc import Iterable

import redis
from tqdm import tqdm

from artifacts.bundle import iter_chunks
from artifacts.profiles import KeyScheme, ProfileRecord, encode_profile


def push_profiles(records: Iterable[ProfileRecord], url: str, *, prefix: str = "reco",
                  batch: int = 2000, total: int | None = None, progress: bool = True) -> int:
    """Write every record's batch profile to ``<prefix>:v1:{user}:batch``; returns the count.

    One pipelined round trip per ``batch`` profiles (no MULTI: each SET is independent, which
    also keeps it valid on Redis Cluster, where a pipeline is split per node by the client).
    A Redis error stops the run with the error; profiles already written stay (they are
    complete values, tagged with their bundle version).
    """
    keys = KeyScheme(prefix)
    client = redis.Redis.from_url(url)
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
