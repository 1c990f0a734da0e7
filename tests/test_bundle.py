"""The bundle contract: atomic export, publish, verification at load."""

import json
import os

import numpy as np
import pytest

from artifacts.bundle import (ARRAYS, CURRENT_LINK, Bundle, BundleError, BundleManifest,
                              BundleWriter, list_versions, publish)
from artifacts.profiles import BatchProfile, ProfileRecord
from training.models.als import build_index


def _write(root, version, n_items=5, fail_before_commit=False, arrays=None):
    with BundleWriter(root, version) as w:
        rng = np.random.default_rng(0)
        arrays = {
            "items": np.asarray([f"i{i}" for i in range(n_items)]),
            "item_category": np.zeros(n_items), "item_markets": np.ones((n_items, 1)),
            "item_sensitive": np.zeros(n_items, bool), "item_in_stock": np.ones(n_items, bool),
            "item_price": np.ones(n_items), "item_list_price": np.ones(n_items),
            "neighbours_idx": np.full((n_items, 2), -1), "neighbours_score": np.zeros((n_items, 2)),
            "neighbours_source": np.zeros((n_items, 2)),
            # overall, then one row per market of the manifest (SE)
            "popular_idx": np.tile(np.arange(n_items), (2, 1)),
            "popular_score": np.ones((2, n_items)),
            "item_factors": rng.random((n_items, 4)),
            **(arrays or {}),
        }
        for name, array in arrays.items():
            w.add_array(name, array)
        w.add_faiss("item_factors.faiss", build_index(arrays["item_factors"].astype(np.float32)))
        w.add_profiles([ProfileRecord("u1", BatchProfile(bundle_version=version, candidates=["i1"]))])
        if fail_before_commit:
            raise RuntimeError("training failed")
        return w.commit(BundleManifest(schema_version=0, version="", created_at="now",
                                       dataset="test", markets=["SE"]))


def test_commit_publish_and_open(tmp_path):
    path = _write(tmp_path, "v1")
    assert path == tmp_path / "v1"
    assert not (tmp_path / CURRENT_LINK).exists(), "commit alone must not switch current"
    publish(tmp_path, "v1")
    bundle = Bundle.open(tmp_path)
    assert bundle.version == "v1"
    assert bundle.items.index("i3") == 3
    assert isinstance(bundle["item_factors"], np.memmap), "arrays are memory-mapped"
    assert [r.user_id for r in bundle.profile_records()] == ["u1"]
    assert set(ARRAYS) <= {f.removesuffix(".npy") for f in bundle.manifest.files}


def test_failed_run_leaves_previous_bundle_current(tmp_path):
    _write(tmp_path, "v1")
    publish(tmp_path, "v1")
    with pytest.raises(RuntimeError):
        _write(tmp_path, "v2", fail_before_commit=True)
    assert list_versions(tmp_path) == ["v1"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")], "temp dir removed"
    assert Bundle.open(tmp_path).version == "v1"


def test_publish_switches_current_atomically(tmp_path):
    _write(tmp_path, "v1")
    _write(tmp_path, "v2")
    publish(tmp_path, "v1")
    publish(tmp_path, "v2")
    assert os.readlink(tmp_path / CURRENT_LINK) == "v2"
    assert Bundle.open(tmp_path).version == "v2"
    with pytest.raises(BundleError, match="no committed bundle"):
        publish(tmp_path, "v3")


def test_corrupt_file_is_refused(tmp_path):
    path = _write(tmp_path, "v1")
    with open(path / "item_factors.npy", "r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="checksum"):
        Bundle.open(path)


def test_partial_bundle_is_refused(tmp_path):
    path = _write(tmp_path, "v1")
    (path / "neighbours_idx.npy").unlink()
    with pytest.raises(BundleError, match="neighbours_idx.npy is missing"):
        Bundle.open(path)


def test_other_schema_version_is_refused(tmp_path):
    path = _write(tmp_path, "v1")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["schema_version"] = 999
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema 999"):
        Bundle.open(path)


@pytest.mark.parametrize("name, array", [
    ("neighbours_idx", np.full((4, 2), -1)),  # a row short: lookups of the last item fail
    ("item_factors", np.ones((6, 4))),
    ("popular_idx", np.arange(5)[None]),  # no row for the market
])
def test_an_array_of_the_wrong_length_is_refused(tmp_path, name, array):
    path = _write(tmp_path, "v1", arrays={name: array})  # its checksum is right
    with pytest.raises(BundleError, match=f"{name}.npy has"):
        Bundle.open(path)


def test_a_faiss_index_that_does_not_match_the_factors_is_refused(tmp_path):
    path = _write(tmp_path, "v1")
    other = _write(tmp_path, "v2", n_items=6)
    (path / "item_factors.faiss").write_bytes((other / "item_factors.faiss").read_bytes())
    with pytest.raises(BundleError, match="item_factors.faiss holds 6 vectors"):
        Bundle.open(path, verify=False)


def test_current_as_a_plain_file_is_refused_as_no_bundle(tmp_path):
    (tmp_path / CURRENT_LINK).write_text("v1")
    with pytest.raises(BundleError, match="has no manifest.json"):
        Bundle.open(tmp_path)


def test_missing_bundle_says_how_to_make_one(tmp_path):
    with pytest.raises(BundleError, match="python -m training train"):
        Bundle.open(tmp_path / "nothing")


def test_writer_rejects_unknown_arrays(tmp_path):
    with BundleWriter(tmp_path, "v1") as w, pytest.raises(ValueError, match="unknown bundle array"):
        w.add_array("secret", np.zeros(3))
