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


def _erase(client, keys, user):
    """What ``DELETE /v1/users/{id}`` does to Redis (service/store/redis.py): the customer's
    keys go, then the id goes on the erasure list."""
    client.delete(*keys.user_keys(user))
    client.zadd(keys.erasures(), {user: 1.0})


def test_push_profiles_leaves_out_customers_erased_after_the_bundle_was_trained(
        demo_bundle_root, demo_bundle, redis_url, redis_prefix, raw_redis, capsys):
    from training.cli import main

    keys = KeyScheme(redis_prefix)
    users = sorted(r.user_id for r in demo_bundle.profile_records())
    argv = ["push-profiles", "--bundle", str(demo_bundle_root), "--redis-url", redis_url,
            "--redis-prefix", redis_prefix, "--quiet"]
    assert main(argv) == 0
    assert raw_redis.exists(keys.batch(users[0]), keys.batch(users[1])) == 2
    _erase(raw_redis, keys, users[0])
    _erase(raw_redis, keys, users[1])
    capsys.readouterr()

    assert main(argv) == 0  # e.g. after Redis came back, or a roll back
    assert raw_redis.exists(keys.batch(users[0]), keys.batch(users[1])) == 0
    assert raw_redis.exists(keys.batch(users[2])) == 1
    assert capsys.readouterr().out == (f"wrote {len(users) - 2:,} profiles of bundle "
                                       f"{demo_bundle.version} to Redis; left out 2 on the "
                                       f"erasure list\n")


def test_a_customer_erased_while_the_push_runs_keeps_no_profile(demo_bundle, redis_url,
                                                                redis_prefix, raw_redis):
    """The erasure lands after the push read the list and before it wrote the customer's
    profile (the service's DEL comes first, so the SET would bring the profile back): the
    push looks its batch up in the list after writing it and deletes it again."""
    from training.redis_push import PushCounts, push_profiles

    keys = KeyScheme(redis_prefix)
    records = list(demo_bundle.profile_records())
    late = records[5].user_id

    def erased_midway():
        for i, record in enumerate(records):
            if i == 5:
                _erase(raw_redis, keys, late)
            yield record

    counts = PushCounts()
    written = push_profiles(erased_midway(), redis_url, prefix=redis_prefix, batch=4,
                            progress=False, counts=counts)
    assert raw_redis.exists(keys.batch(late)) == 0
    assert written == counts.written == len(records) - 1 and counts.erased == 1
    assert raw_redis.exists(keys.batch(records[4].user_id), keys.batch(records[6].user_id)) == 2
