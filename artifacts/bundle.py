"""The bundle format: one immutable directory per trained version.

Layout of ``<root>/<version>/``::

    manifest.json              BundleManifest (schema version, counts, vocabularies, checksums)
    items.npy                  item ids, index order = the item vocabulary for every other array
    item_category.npy          int32 index into manifest.categories
    item_markets.npy           uint8 bit set (little bit order) over manifest.markets; all ones
                               when the catalogue does not restrict markets
    item_sensitive.npy         bool
    item_in_stock.npy          bool
    item_price.npy             float32 current price (NaN when unknown)
    item_list_price.npy        float32 usual price (NaN when unknown)
    neighbours_idx.npy         int32 (n_items, K) item-to-item neighbours, -1 padded, best first
    neighbours_score.npy       float32 (n_items, K)
    neighbours_source.npy      uint8 (n_items, K) index into NEIGHBOUR_SOURCES
    popular_idx.npy            int32 (1 + n_markets, P): row 0 overall, row 1+m market m
    popular_score.npy          float32 (1 + n_markets, P)
    item_factors.npy           float32 (n_items, f) ALS item factors (zeros: item unseen)
    item_factors.faiss         FAISS inner-product index over item_factors (ids = item index)
    item_repurchasable.npy     optional bool: a customer who bought the item may be shown it
                               again; absent (older bundles): False for every item
    item_name.npy              optional str: display name ("because you bought <name>");
                               absent: empty, callers show the id
    new_idx.npy, new_score.npy optional int32 / float32 (1 + n_markets, L): new arrivals per
                               market row (row 0 overall), -1 padded, best first
    sale_idx.npy, sale_score.npy  optional, the same for items on sale (price below list price)
    item_size_system.npy       optional int16 index into manifest.sizes["systems"], -1: no sizes
    item_size_offered.npy      optional bool (n_items, S): sizes on offer, columns in the order
                               of the item's size system; a row of all False: not declared
    item_size_prior.npy        optional float32 (n_items, S): what the item's buyers bought,
                               smoothed toward its category (columns as above)
    item_fit_offset.npy        optional float32: > 0 runs small, < 0 runs large (shrunk to 0)
    size_loglik.npy            optional float32 table (rows, S): log P(evidence | size), one
                               block of rows per size system (see artifacts.sizing)
                               (size arrays absent, e.g. older bundles: no size model)
    profiles/part-NNNNN.msgpack  batch profiles (list[ProfileRecord]), for seeding a store

``<root>/current`` is a symlink to the version being served. A bundle is written into a hidden
temporary directory, checksummed, renamed into place and only then (optionally) made current, so
a failed or interrupted run never leaves a half-written bundle where a reader could find it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import faiss
import msgspec
import numpy as np

from artifacts.profiles import ProfileRecord
from artifacts.vocabulary import Vocabulary

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
CURRENT_LINK = "current"
PROFILES_DIR = "profiles"
NEIGHBOUR_SOURCES = ("co_purchase", "als")

#: Arrays every bundle carries, with the dtype the reader insists on.
ARRAYS: dict[str, str] = {
    "items": "U",
    "item_category": "int32",
    "item_markets": "uint8",
    "item_sensitive": "bool",
    "item_in_stock": "bool",
    "item_price": "float32",
    "item_list_price": "float32",
    "neighbours_idx": "int32",
    "neighbours_score": "float32",
    "neighbours_source": "uint8",
    "popular_idx": "int32",
    "popular_score": "float32",
    "item_factors": "float32",
}
#: Arrays a bundle may carry; a reader gets the default (see :func:`optional_default`) when
#: one is absent, so adding one here does not change the schema version.
OPTIONAL_ARRAYS: dict[str, str] = {
    "item_repurchasable": "bool",
    "item_name": "U",
    "new_idx": "int32",
    "new_score": "float32",
    "sale_idx": "int32",
    "sale_score": "float32",
    "item_size_system": "int16",
    "item_size_offered": "bool",
    "item_size_prior": "float32",
    "item_fit_offset": "float32",
    "size_loglik": "float32",
}
FAISS_FILES = ("item_factors.faiss",)
#: Arrays with one row per market row (1 + len(manifest.markets)), not per item.
MARKET_ROW_ARRAYS = frozenset({"popular_idx", "popular_score", "new_idx", "new_score",
                               "sale_idx", "sale_score"})
#: Optional tables with no row per item or market (their row count is not checked).
TABLE_ARRAYS = frozenset({"size_loglik"})


def optional_default(name: str, n_items: int) -> np.ndarray:
    """The value of an optional array a bundle does not carry."""
    if name == "item_repurchasable":
        return np.zeros(n_items, dtype=bool)
    if name == "item_name":
        return np.full(n_items, "", dtype="U1")
    if name in MARKET_ROW_ARRAYS:  # no list at all: readers check ``Bundle.has(name)``
        return np.zeros((1, 0), dtype=OPTIONAL_ARRAYS[name])
    if name == "item_size_system":
        return np.full(n_items, -1, dtype=np.int16)
    if name == "item_fit_offset":
        return np.zeros(n_items, dtype=np.float32)
    if name in ("item_size_offered", "item_size_prior"):
        return np.zeros((n_items, 0), dtype=OPTIONAL_ARRAYS[name])
    if name in TABLE_ARRAYS:
        return np.zeros((0, 0), dtype=OPTIONAL_ARRAYS[name])
    raise KeyError(name)


class BundleError(Exception):
    """A bundle is missing, incomplete, corrupt or of an unsupported schema version."""


class FileEntry(msgspec.Struct, frozen=True):
    bytes: int
    sha256: str


class BundleManifest(msgspec.Struct, kw_only=True):
    """Everything a reader needs to know about a bundle besides its arrays.

    New fields must always get defaults so older readers and newer writers stay compatible.
    """

    schema_version: int
    version: str
    created_at: str
    dataset: str
    data_start: str | None = None
    data_end: str | None = None
    counts: dict[str, int] = {}
    markets: list[str] = []
    categories: list[str] = []
    config: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    """Evaluation figures of the run that produced the bundle (training.evaluation.holdout):
    the held-out window, and MAP@12 / recall / NDCG per model and customer group."""
    repurchase: dict[str, Any] = {}
    """What the trainer learned about repurchases: shop-wide rate, threshold, categories."""
    segments: dict[str, Any] = {}
    """Customer segments (training.models.segments): the rules and thresholds the trainer
    applied, segment sizes and shop-wide shares. Empty in bundles trained before segments."""
    sizes: dict[str, Any] = {}
    """The size model (artifacts.sizing.SizeModelInfo as builtins): size orders per system,
    decision weights and threshold. Empty in bundles trained without sizes."""
    homepage: dict[str, Any] = {}
    """Homepage section rules (artifacts.homepage.HomepageRules as builtins): layouts per
    segment, priorities, diversity. Empty: readers use the defaults."""
    timings: dict[str, float] = {}
    files: dict[str, FileEntry] = {}


def new_version(now: dt.datetime | None = None) -> str:
    """A sortable, unique bundle version: UTC timestamp plus a short random suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BundleWriter:
    """Writes one bundle aside, then moves it into place in one rename.

    Use as a context manager: leaving the block with an exception removes the temporary
    directory and leaves ``root`` exactly as it was.
    """

    def __init__(self, root: Path | str, version: str | None = None):
        self.root = Path(root)
        self.version = version or new_version()
        self.root.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(self.root)
        self.tmp = _temp_dir(self.root, self.version)
        self.tmp.mkdir()
        self._profile_parts = 0
        self.path: Path | None = None

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.path is None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add_array(self, name: str, array: np.ndarray) -> None:
        expected = ARRAYS.get(name) or OPTIONAL_ARRAYS.get(name)
        if expected is None:
            raise ValueError(f"unknown bundle array {name!r}")
        if expected == "U":
            array = np.asarray(array, dtype=np.str_)
        else:
            array = np.ascontiguousarray(array, dtype=expected)
        np.save(self.tmp / f"{name}.npy", array, allow_pickle=False)

    def add_faiss(self, name: str, index: faiss.Index) -> None:
        if name not in FAISS_FILES:
            raise ValueError(f"unknown bundle index {name!r}")
        faiss.write_index(index, str(self.tmp / name))

    def add_profiles(self, records: list[ProfileRecord]) -> None:
        """Append one part of batch profiles (call repeatedly to bound memory)."""
        folder = self.tmp / PROFILES_DIR
        folder.mkdir(exist_ok=True)
        part = folder / f"part-{self._profile_parts:05d}.msgpack"
        part.write_bytes(msgspec.msgpack.encode(records))
        self._profile_parts += 1

    def commit(self, manifest: BundleManifest) -> Path:
        """Checksum every file, write the manifest and rename the bundle into place."""
        missing = [n for n in ARRAYS if not (self.tmp / f"{n}.npy").exists()]
        missing += [n for n in FAISS_FILES if not (self.tmp / n).exists()]
        if missing:
            raise BundleError(f"bundle {self.version} is missing {', '.join(missing)}")
        files = {}
        for path in sorted(p for p in self.tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(self.tmp).as_posix()
            files[rel] = FileEntry(bytes=path.stat().st_size, sha256=_sha256(path))
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        manifest.schema_version = SCHEMA_VERSION
        manifest.version = self.version
        manifest.files = files
        (self.tmp / MANIFEST_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
        final = self.root / self.version
        os.rename(self.tmp, final)
        _fsync_dir(self.root)
        self.path = final
        return final


def publish(root: Path | str, version: str) -> None:
    """Atomically point ``<root>/current`` at ``version`` (which must already be committed)."""
    root = Path(root)
    if not (root / version / MANIFEST_FILE).exists():
        raise BundleError(f"cannot publish {version}: no committed bundle at {root / version}")
    tmp_link = root / f".current-{uuid.uuid4().hex[:8]}"
    os.symlink(version, tmp_link)
    os.replace(tmp_link, root / CURRENT_LINK)
    _fsync_dir(root)


def is_current(root: Path | str, version: str) -> bool:
    """Whether ``<root>/current`` points at ``version``."""
    try:
        return os.readlink(Path(root) / CURRENT_LINK) == version
    except OSError:
        return False


def discard(root: Path | str, version: str) -> Path | None:
    """Remove the committed bundle ``version`` under ``root`` unless it is ``current``; returns
    the directory removed (None: there was none, or it is current). It is first renamed, in one
    step, to this process's writer folder name, so a process killed while deleting it leaves
    what the next writer clears away (:func:`_remove_abandoned`), never half a bundle."""
    root = Path(root)
    path = root / version
    if is_current(root, version) or not path.is_dir() or path.is_symlink():
        return None
    aside = _temp_dir(root, version)
    os.rename(path, aside)
    shutil.rmtree(aside, ignore_errors=True)
    return path


def _temp_dir(root: Path, version: str) -> Path:
    """Where this process writes bundle ``version`` before the rename into place."""
    return root / f".tmp-{version}-{os.getpid()}"


def _remove_abandoned(root: Path) -> None:
    """Remove the folders of writers killed before they could clean up (``.tmp-*-<pid>`` of a
    process that no longer runs): never a bundle, never another live writer's."""
    for tmp in root.glob(".tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not (tmp.is_dir() and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def resolve(path: Path | str) -> Path:
    """The concrete bundle directory for ``path``.

    ``path`` may be a bundle directory, a bundles root (its ``current`` is used) or the
    ``current`` link itself.
    """
    path = Path(path)
    if (path / CURRENT_LINK).exists() and not (path / MANIFEST_FILE).exists():
        path = path / CURRENT_LINK
    if not path.exists():
        raise BundleError(f"no bundle at {path}: train one first (python -m training train --help)")
    return path.resolve()


def read_manifest(bundle_dir: Path) -> BundleManifest:
    try:
        manifest = msgspec.json.decode((bundle_dir / MANIFEST_FILE).read_bytes(), type=BundleManifest)
    except (FileNotFoundError, NotADirectoryError):
        raise BundleError(f"{bundle_dir} has no {MANIFEST_FILE}: not a bundle or not committed")
    except msgspec.DecodeError as exc:
        raise BundleError(f"{bundle_dir / MANIFEST_FILE} is corrupt: {exc}") from exc
    if manifest.schema_version != SCHEMA_VERSION:
        raise BundleError(
            f"{bundle_dir} has bundle schema {manifest.schema_version}, this code reads "
            f"{SCHEMA_VERSION}: retrain or upgrade"
        )
    return manifest


class Bundle:
    """A loaded bundle: memory-mapped arrays, the item vocabulary and the FAISS index.

    Opening verifies the manifest's schema version and every file's size and checksum, so a
    partial or corrupt bundle is refused before anything is served from it.
    """

    def __init__(self, path: Path, manifest: BundleManifest, arrays: dict[str, np.ndarray],
                 item_index: faiss.Index):
        self.path = path
        self.manifest = manifest
        self.arrays = arrays
        self.item_index = item_index
        self.items = Vocabulary.from_array(arrays["items"])

    @property
    def version(self) -> str:
        return self.manifest.version

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def has(self, name: str) -> bool:
        """Whether the bundle carries array ``name`` itself (an optional array it lacks reads
        as its default, see :func:`optional_default`)."""
        return f"{name}.npy" in self.manifest.files

    @classmethod
    def open(cls, path: Path | str, *, verify: bool = True) -> Bundle:
        bundle_dir = resolve(path)
        manifest = read_manifest(bundle_dir)
        if verify:
            verify_files(bundle_dir, manifest)
        arrays = {}
        for name, dtype in ARRAYS.items():
            try:
                array = np.load(bundle_dir / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise BundleError(f"{bundle_dir}: cannot read {name}.npy: {exc}") from exc
            if dtype != "U" and array.dtype != np.dtype(dtype):
                raise BundleError(f"{bundle_dir}: {name}.npy has dtype {array.dtype}, not {dtype}")
            arrays[name] = array
        n_items = len(arrays["items"])
        for name in ARRAYS:  # a row per item (or market row), or lookups fail mid-request
            rows = 1 + len(manifest.markets) if name in MARKET_ROW_ARRAYS else n_items
            if len(arrays[name]) != rows:
                raise BundleError(f"{bundle_dir}: {name}.npy has {len(arrays[name])} rows, "
                                  f"not {rows}")
        for name, dtype in OPTIONAL_ARRAYS.items():
            path = bundle_dir / f"{name}.npy"
            if not path.exists():
                arrays[name] = optional_default(name, n_items)
                continue
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise BundleError(f"{bundle_dir}: cannot read {name}.npy: {exc}") from exc
            rows = 1 + len(manifest.markets) if name in MARKET_ROW_ARRAYS else n_items
            kind_ok = array.dtype.kind == "U" if dtype == "U" else array.dtype == np.dtype(dtype)
            if not kind_ok or (name not in TABLE_ARRAYS and len(array) != rows):
                raise BundleError(f"{bundle_dir}: {name}.npy has dtype {array.dtype} and "
                                  f"{len(array)} rows, not {dtype} x {rows}")
            arrays[name] = array
        try:
            index = faiss.read_index(str(bundle_dir / "item_factors.faiss"), faiss.IO_FLAG_MMAP)
        except RuntimeError as exc:
            raise BundleError(f"{bundle_dir}: cannot read item_factors.faiss: {exc}") from exc
        factors = arrays["item_factors"]
        if index.ntotal != n_items or index.d != (factors.shape[1] if factors.ndim == 2 else -1):
            raise BundleError(f"{bundle_dir}: item_factors.faiss holds {index.ntotal} vectors of "
                              f"{index.d}, not {n_items} of the item factors' width")
        return cls(bundle_dir, manifest, arrays, index)

    def profile_records(self) -> Iterator[ProfileRecord]:
        """Stream the batch profiles stored with the bundle, one part file at a time."""
        decoder = msgspec.msgpack.Decoder(list[ProfileRecord])
        for part in sorted((self.path / PROFILES_DIR).glob("part-*.msgpack")):
            yield from decoder.decode(part.read_bytes())


def verify_files(bundle_dir: Path, manifest: BundleManifest) -> None:
    """Raise :class:`BundleError` unless every file listed in the manifest is intact."""
    if not manifest.files:
        raise BundleError(f"{bundle_dir}: manifest lists no files")
    for rel, entry in manifest.files.items():
        path = bundle_dir / rel
        if not path.is_file():
            raise BundleError(f"{bundle_dir}: {rel} is missing")
        if path.stat().st_size != entry.bytes:
            raise BundleError(f"{bundle_dir}: {rel} has {path.stat().st_size} bytes, "
                              f"manifest says {entry.bytes}")
        if _sha256(path) != entry.sha256:
            raise BundleError(f"{bundle_dir}: {rel} does not match its checksum")


def list_versions(root: Path | str) -> list[str]:
    """Committed bundle versions under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and not p.is_symlink()
                  and (p / MANIFEST_FILE).exists())


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split an iterable into lists of at most ``size`` elements."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
