"""The trainer's command line on bad input and interrupted runs: a clear message naming the
file, no traceback, nothing half-written left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from artifacts.bundle import CURRENT_LINK, BundleWriter
from tests.conftest import ROOT
from training.cli import main
from training.config import ConfigError, TrainConfig
from training.data import DataError
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
