"""The trainer's command line on bad input and interrupted runs: a clear message naming the
file, no traceback, nothing half-written left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import redis

from artifacts.bundle import CURRENT_LINK, BundleWriter, publish, resolve
from tests.conftest import ROOT
from tests.inprocess import RedisServer, free_port
from training.cli import main
from training.config import ConfigError, TrainConfig
from training.data import DataError
from training.data.canonical import write_canonical
from training.data.schema import CanonicalData
from training.erasures import read_erasures
from training.interactions import build_interactions


def test_an_erasure_list_with_a_byte_order_mark_erases_its_first_customer(tmp_path):
    path = tmp_path / "erased.txt"
    path.write_bytes(b"\xef\xbb\xbfc00248\r\nc00267\r\n")
    assert read_erasures(None, "reco", path) == {"c00248", "c00267"}
    path.write_bytes("c1\n".encode("utf-16"))
    with pytest.raises(DataError, match="erased.txt: erasure list is not UTF-8"):
        read_erasures(None, "reco", path)


@pytest.mark.parametrize("name, content, message", [
    ("missing.json", None, "missing.json: cannot read the config file"),
    ("list.json", b"[1, 2]", "list.json: expected an object of TrainConfig fields, got list"),
    ("typo.json", b'{"factorz": 8}', "typo.json: Object contains unknown field `factorz`"),
    ("broken.json", b'{"factors": ', "broken.json: "),
])
def test_config_errors_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.load(path)


def test_a_toml_config_is_read_whatever_the_case_of_its_suffix(tmp_path):
    path = tmp_path / "settings.TOML"
    path.write_text("factors = 8\n")
    assert TrainConfig.load(path).factors == 8


def test_purchases_of_no_catalogue_item_are_a_data_error(shop):
    orphans = shop.purchases.with_columns(pl.lit("not-an-item").alias("item_id"))
    data = CanonicalData(shop.name, orphans, shop.items, shop.customers, shop.events)
    with pytest.raises(DataError, match="no purchase refers to an item in the catalogue"):
        build_interactions(data, TrainConfig())


def test_an_output_folder_that_cannot_be_written_stops_before_training(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    assert main(["train", "--no-redis", "--no-evaluate", "--quiet", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {target}: cannot create the bundles folder"), err
    assert "Traceback" not in err


def test_a_new_writer_removes_folders_of_writers_that_were_killed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    abandoned = tmp_path / f".tmp-20260101T000000Z-aaaaaa-{dead}"
    abandoned.mkdir(parents=True)
    (abandoned / "item_factors.npy").write_bytes(b"half")
    live = tmp_path / f".tmp-20260101T000000Z-bbbbbb-{os.getppid()}"
    live.mkdir()
    with BundleWriter(tmp_path, "v1") as writer:
        assert writer.tmp.exists()
    assert not abandoned.exists() and live.exists()


def test_sigterm_during_export_leaves_no_half_written_bundle(tmp_path):
    """A trainer stopped while it writes its bundle removes what it wrote; current stays."""
    out = tmp_path / "bundles"
    args = [sys.executable, "-m", "training", "train", "--no-redis", "--no-evaluate", "--quiet",
            "--out", str(out)]
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, timeout=300)
    before = os.readlink(out / CURRENT_LINK)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(".tmp-*")):  # the export has begun
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(out.glob(".tmp-*")), "the half-written bundle was left behind"
    assert os.readlink(out / CURRENT_LINK) == before
    assert sorted(p.name for p in out.iterdir()) == sorted([before, CURRENT_LINK])


def test_a_catalogue_with_nothing_in_stock_is_one_line_not_a_traceback(shop, tmp_path, capsys):
    items = shop.items.with_columns(pl.lit(False).alias("in_stock"))
    data_dir = write_canonical(CanonicalData(shop.name, shop.purchases, items, shop.customers,
                                             shop.events), tmp_path / "export")
    code = main(["train", "--dataset", "canonical", "--data", str(data_dir), "--no-redis",
                 "--no-evaluate", "--quiet", "--out", str(tmp_path / "bundles")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: no item to recommend: none is both in stock"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "bundles").iterdir())


@pytest.mark.parametrize("command", ["train", "push-profiles"])
def test_a_bad_redis_url_is_one_line_naming_the_scheme_before_any_work(
        command, demo_bundle_root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "bundles"
    monkeypatch.setenv("RECO_REDIS_URL", "foo://:hunter2@x")  # a mistyped environment
    argv = (["train", "--out", str(out), "--quiet"] if command == "train"
            else ["push-profiles", "--bundle", str(demo_bundle_root), "--quiet"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("error: Redis URL scheme 'foo://' is not supported; expected one of "
                   "redis://, rediss://, unix://, redis+cluster://, rediss+cluster:// "
                   "(--redis-url or $RECO_REDIS_URL)\n"), err
    assert not out.exists()  # train stopped before loading or training anything


@pytest.mark.parametrize("command, hint", [
    ("train", "(use --no-redis to skip writing profiles)"),
    ("push-profiles", "(check that Redis runs at --redis-url or $RECO_REDIS_URL)"),
])
def test_the_hint_after_a_redis_error_fits_the_command(command, hint, demo_bundle_root,
                                                       dead_redis_url, tmp_path, capsys):
    argv = (["train", "--out", str(tmp_path / "bundles")] if command == "train"
            else ["push-profiles", "--bundle", str(demo_bundle_root)])
    assert main([*argv, "--redis-url", dead_redis_url, "--quiet"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: Redis: ") and err.rstrip().endswith(hint), err
    assert command == "train" or "--no-redis" not in err


def test_the_evaluate_report_records_the_whole_command(shop, tmp_path, capsys):
    data_dir = write_canonical(shop, tmp_path / "export")
    argv = ["evaluate", "--dataset", "canonical", "--data", str(data_dir), "--split-at",
            "2026-06-01", "--test-days", "14", "--models", "popular_7d", "--quiet",
            "--report", str(tmp_path / "my report")]
    assert main(argv) == 0
    text = (tmp_path / "my report" / "report.md").read_text()
    assert (f"python -m training evaluate --dataset canonical --data {data_dir} --split-at "
            f"2026-06-01 --test-days 14 --models popular_7d --quiet --report "
            f"'{tmp_path / 'my report'}'\n") in text, text


def _lines_of(stream) -> str:
    return "".join(line for line in stream.read().decode().splitlines(keepends=True)
                   if " INFO " not in line)


@pytest.mark.parametrize("signum, stage", [(signal.SIGTERM, "profiles_to_redis"),
                                           (signal.SIGINT, "candidates_and_export")])
def test_a_signal_at_any_stage_removes_the_run_s_bundle_and_says_so_in_one_line(
        signum, stage, demo_bundle_root, tmp_path):
    """The trainer as a subprocess, stopped once a stage has begun. Its Redis is a server of
    this test's own with writes paused, so the push cannot finish before the signal lands: the
    bundle is committed (when the stage is the push) and must be removed again."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary")
    out = tmp_path / "bundles"
    serving = resolve(demo_bundle_root).name
    shutil.copytree(resolve(demo_bundle_root), out / serving)
    publish(out, serving)
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"factors": 8, "iterations": 3, "candidates": 30}))
    server = RedisServer(binary, free_port(), tmp_path).start()
    client = redis.Redis.from_url(server.url)
    client.execute_command("CLIENT", "PAUSE", 120_000, "WRITE")  # reads answer, writes wait
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "train", "--no-evaluate", "--quiet", "--config",
         str(config), "--redis-url", server.url, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for line in proc.stderr:  # the stage log lines, as they come
            if f" {stage} ..." in line.decode():
                break
        else:
            pytest.fail(f"the run ended before {stage} began: {proc.wait()}")
        proc.send_signal(signum)
        status = proc.wait(timeout=120)
        err = _lines_of(proc.stderr)
        assert status == 128 + signum, err  # what the run said, when it ended otherwise
    finally:
        if proc.poll() is None:
            proc.kill()
        client.execute_command("CLIENT", "UNPAUSE")
        client.close()
        server.kill()
    name = signal.Signals(signum).name
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"stopped by {name} during "), err
    assert err.rstrip().endswith("'current' unchanged"), err
    if stage == "profiles_to_redis":
        assert err.startswith(f"stopped by {name} during profiles_to_redis: removed bundle "), err
    assert sorted(p.name for p in out.iterdir()) == sorted([serving, CURRENT_LINK])
    assert os.readlink(out / CURRENT_LINK) == serving
