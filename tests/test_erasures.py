"""The trainer honours the erasure list the service writes."""

import polars as pl
import pytest
import redis

from artifacts.profiles import KeyScheme
from training.data.schema import DataError
from training.erasures import drop_erased, read_erasures


def test_read_from_redis_and_file(redis_url, redis_prefix, tmp_path):
    client = redis.Redis.from_url(redis_url)
    client.zadd(KeyScheme(redis_prefix).erasures(), {"c00001": 1.0, "c00002": 2.0})
    client.close()
    listing = tmp_path / "erased.txt"
    listing.write_text("c00003\n\n")
    assert read_erasures(redis_url, redis_prefix, listing) == {"c00001", "c00002", "c00003"}
    with pytest.raises(DataError, match="not found"):
        read_erasures(None, file=tmp_path / "missing.txt")


def test_drop_erased_removes_every_row(shop):
    erased = set(shop.purchases["user_id"].unique().sort().head(5).to_list())
    kept = drop_erased(shop, erased)
    assert not set(kept.purchases["user_id"].to_list()) & erased
    assert not set(kept.customers["user_id"].to_list()) & erased
    if kept.events is not None:
        assert not set(kept.events.filter(pl.col("user_id").is_not_null())["user_id"]) & erased
    assert kept.purchases.height < shop.purchases.height
    assert drop_erased(shop, set()) is shop
