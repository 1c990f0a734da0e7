"""benchmarks/train_scale.py end to end on a tiny log, so the benchmark cannot rot: the
generator's tables, both measured processes, the report and the Redis clean-up. No timings are
asserted (speed is the benchmark's business)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import redis

from training.data import canonical

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_scale.py"


def _module():
    spec = importlib.util.spec_from_file_location("train_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_is_seeded_power_law_and_canonical(tmp_path):
    bench = _module()
    a = bench.generate(20_000, 1_000, 500, seed=3)
    b = bench.generate(20_000, 1_000, 500, seed=3)
    for name in ("purchases", "items", "customers"):
        assert a[name].equals(b[name]), f"{name} differs between two runs with one seed"
    purchases = a["purchases"]
    assert purchases.height == 20_000
    assert purchases["user_id"].n_unique() == 1_000, "every customer buys at least once"
    per_item = purchases.group_by("item_id").len()["len"].sort(descending=True).to_list()
    assert per_item[0] > 10 * per_item[len(per_item) // 2], "item popularity is heavy-tailed"
    per_user = purchases.group_by("user_id").len()["len"].sort(descending=True).to_list()
    assert per_user[0] > 10 * per_user[len(per_user) // 2], "customer activity is heavy-tailed"
    span = purchases["ts"].max() - purchases["ts"].min()
    assert span.days >= 700
    # the trainer's reader accepts the tables as they are written
    for name, df in a.items():
        df.write_parquet(tmp_path / f"{name}.parquet")
    data = canonical.load(tmp_path)
    assert data.purchases.height == 20_000
    assert data.items["sizes"].list.len().min() >= 1
    assert data.items["markets"].drop_nulls().len() > 0, "some items are sold in one market"
    assert set(data.customers["country"].unique()) <= {"SE", "DE", "GB", "US", "FR"}


def test_benchmark_runs_end_to_end_and_leaves_nothing_in_redis(tmp_path, redis_url):
    bench = _module()
    out = tmp_path / "scale"
    assert bench.main(["--rows", "20000", "--customers", "2000", "--items", "800",
                       "--factors", "8", "--iterations", "2", "--out", str(out),
                       "--redis-url", redis_url]) == 0
    report = json.loads((out / "train_scale.json").read_text())
    stages = report["trainer"]["stages"]
    for name in ("load", "index", "als", "item_item", "sizes", "candidates_and_export",
                 "profiles_to_redis", "publish"):
        assert stages[name]["peak_bytes"] >= stages[name]["start_bytes"] > 0, name
    assert report["trainer"]["profiles"] == report["trainer"]["profiles_pushed"] == 2000
    bare = report["bare"]
    assert bare["users"] == 2000 and bare["nnz"] > 0
    assert report["summary"]["memory_reference_bytes"] == bare["csr_bytes"] + bare["factor_bytes"]
    assert report["summary"]["time_ratio"] > 0
    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match="bench-scale-*", count=1000))
    finally:
        client.close()
    # the bundle it trained is the published one
    assert (out / "bundles" / "current").resolve().name == report["trainer"]["version"]
    assert pl.read_parquet(out / "data" / "purchases.parquet").height == 20_000


def test_no_redis_pushes_nothing(tmp_path, redis_url):
    """``--no-redis`` leaves the push out (the trainer's process once fell back to the default
    Redis URL and pushed under the prefix ``None``)."""
    bench = _module()
    out = tmp_path / "scale"
    assert bench.main(["--rows", "5000", "--customers", "500", "--items", "300",
                       "--factors", "4", "--iterations", "1", "--out", str(out),
                       "--redis-url", redis_url, "--no-redis"]) == 0
    report = json.loads((out / "train_scale.json").read_text())
    assert report["trainer"]["profiles"] == 500
    assert report["trainer"]["profiles_pushed"] == 0
