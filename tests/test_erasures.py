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


def test_train_drops_erased_customers_and_pushes_no_profile(shop, tmp_path, redis_url,
                                                            redis_prefix):
    from training.cli import main

    erased = sorted(shop.purchases["user_id"].unique().to_list())[:3]
    client = redis.Redis.from_url(redis_url)
    client.zadd(KeyScheme(redis_prefix).erasures(), {erased[0]: 1.0, erased[1]: 2.0})
    listing = tmp_path / "erased.txt"
    listing.write_text(erased[2] + "\n")
    code = main(["train", "--dataset", "synthetic", "--out", str(tmp_path / "bundles"),
                 "--redis-url", redis_url, "--redis-prefix", redis_prefix,
                 "--erasures", str(listing), "--no-evaluate", "--quiet"])
    assert code == 0
    from artifacts.bundle import Bundle

    users = {r.user_id for r in Bundle.open(tmp_path / "bundles").profile_records()}
    assert users and not users & set(erased)
    keys = KeyScheme(redis_prefix)
    assert client.exists(*[keys.batch(u) for u in erased]) == 0
    assert client.exists(keys.batch(sorted(users)[0])) == 1
    client.close()
