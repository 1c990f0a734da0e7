"""The erasure list: customers who asked to be forgotten (``DELETE /v1/users/{id}``).

The service records each erased id in the Redis sorted set ``<prefix>:v1:erasures`` (id ->
time of erasure). Every training run reads it and drops those customers' rows before anything
is fitted, so a shop export that still holds their history does not bring them back. Every push
of profiles to Redis (a run's, and ``push-profiles``) reads it again and writes no profile for a
customer on it (:func:`training.redis_push.push_profiles`): a bundle trained before an erasure
still holds that customer's profile. The list is kept: the export may hold the rows for ever.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from artifacts.profiles import KeyScheme
from training.data.schema import CanonicalData, DataError
from training.redis_push import erased_ids, redis_client

log = logging.getLogger(__name__)


def read_erasures(url: str | None, prefix: str = "reco", file: Path | None = None) -> set[str]:
    """Erased customer ids from Redis (when ``url`` is given; a single server or a cluster, see
    :func:`training.redis_push.redis_client`) and/or a file of one id per line."""
    erased: set[str] = set()
    if url:
        client = redis_client(url)
        try:
            erased |= erased_ids(client, KeyScheme(prefix))
        finally:
            client.close()
    if file is not None:
        if not file.is_file():
            raise DataError(f"{file}: erasure list not found")
        try:  # utf-8-sig: a byte-order mark is not part of the first id
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{file}: erasure list is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})") from None
        erased |= {line.strip() for line in text.splitlines() if line.strip()}
    return erased


def drop_erased(data: CanonicalData, erased: set[str]) -> CanonicalData:
    """``data`` without any row of an erased customer (purchases, customers, events)."""
    if not erased:
        return data
    ids = pl.lit(sorted(erased), dtype=pl.List(pl.String)).first()
    purchases = data.purchases.filter(~pl.col("user_id").is_in(ids))
    dropped = data.purchases.height - purchases.height
    customers = None if data.customers is None else \
        data.customers.filter(~pl.col("user_id").is_in(ids))
    events = None if data.events is None else \
        data.events.filter(pl.col("user_id").is_null() | ~pl.col("user_id").is_in(ids))
    log.info("erasure list: %d customer(s), %d purchase row(s) dropped", len(erased), dropped)
    if purchases.height == 0:
        raise DataError(f"{data.name}: no purchases left after applying the erasure list")
    return CanonicalData(data.name, purchases, data.items,
                         customers if customers is not None and customers.height else None,
                         events if events is not None and events.height else None)
