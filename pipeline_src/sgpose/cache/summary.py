"""What a feature cache holds, without training on it: samples, shards, each dataset's shape, dtype,
compression and bytes per sample, the fingerprints and the parameters that made it (`describe`); and every
chunk's checksum read back, with a summary (`verify`). What a user asks of a 900 GB cache before a
refiner reads it for a day (`sgpose inspect`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from sgpose.cache.format import dataset_keys, read_attrs
from sgpose.cache.reader import open_cache
from sgpose.core.errors import InputError

FILTERS = {1: "gzip", 32000: "lzf", 32001: "blosc", 32004: "lz4", 32015: "zstd"}  # HDF5 filter ids
PARAM_ATTRS = ("layout", "input_size", "heatmap_size", "num_joints", "backbone", "checkpoint_sha256", "cache",
               "compute", "flip_test", "views", "store")


@dataclass
class DatasetInfo:
    """One dataset of a cache: its shape, dtype, compression, chunk shape and bytes on disk (all shards)."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    compression: str
    chunks: tuple[int, ...] | None
    stored: int
    num_chunks: int

    @property
    def per_sample(self) -> float:
        return self.stored / self.shape[0] if self.shape and self.shape[0] else 0.0


@dataclass
class CacheSummary:
    """A cache file (a manifest over shards, or one shard): what `describe` found."""

    path: Path
    samples: int
    shards: list[Path]
    fingerprints: list[str]
    datasets: list[DatasetInfo]
    params: dict = field(default_factory=dict)

    @property
    def stored(self) -> int:
        return sum(d.stored for d in self.datasets)


def compression_of(ds: h5py.Dataset) -> str:
    """The dataset's compression filter by name (`none` without one)."""
    filters = ds.id.get_create_plist()
    names = [FILTERS.get(filters.get_filter(i)[0], f"filter {filters.get_filter(i)[0]}")
             for i in range(filters.get_nfilters())]
    names = [n for n in names if n not in ("filter 3", "filter 2")]  # Fletcher-32 (3) and shuffle (2) are no codecs
    return "+".join(names) or "none"


def _files(h5: h5py.File, path: Path) -> list[Path]:
    """The shard files of a manifest (in order), or the file itself for a shard."""
    names = h5.attrs.get("shard_files")
    return [path.parent / str(n) for n in names] if names is not None else [path]


def describe(path: str | Path) -> CacheSummary:
    """The summary of the cache at `path` (a split's manifest or a shard); errors name the file."""
    path = Path(path)
    with open_cache(path) as h5:
        files = _files(h5, path)
        attrs = read_attrs(h5)
        samples = int(attrs.get("num_samples", len(h5["heatmaps"]) if "heatmaps" in h5 else 0))
        keys = dataset_keys(h5)
        shapes = {k: (tuple(h5[k].shape), str(h5[k].dtype)) for k in keys}
    stored = dict.fromkeys(keys, 0)
    chunks = dict.fromkeys(keys, 0)
    kinds: dict[str, tuple[str, tuple[int, ...] | None]] = {}
    prints = []
    for shard in files:
        with h5py.File(shard, "r") as f:
            prints.append(str(f.attrs.get("fingerprint", "")))
            for k in keys:
                if k in f:
                    ds = f[k]
                    stored[k] += ds.id.get_storage_size()
                    chunks[k] += ds.id.get_num_chunks() if ds.chunks else 1
                    kinds.setdefault(k, (compression_of(ds), ds.chunks))
    datasets = [DatasetInfo(k, shapes[k][0], shapes[k][1], *kinds.get(k, ("none", None)), stored[k], chunks[k])
                for k in keys]
    return CacheSummary(path, samples, files, prints, datasets, {k: attrs[k] for k in PARAM_ATTRS if k in attrs})


@dataclass
class Verified:
    """`verify`'s finding: chunks read back per shard, the damaged ones, the bytes read and the time."""

    chunks: int
    datasets: int
    shards: int
    damaged: list[str]
    stored: int
    seconds: float


def verify(summary: CacheSummary, block: int = 256) -> Verified:
    """Read every chunk of every dataset of every shard (`block` samples at a time), so that HDF5 checks each
    chunk's Fletcher-32 checksum; a damaged chunk is recorded (shard, dataset, rows) and the reading goes on."""
    start, damaged = time.monotonic(), []
    for shard in summary.shards:
        try:
            with h5py.File(shard, "r") as f:
                for key in dataset_keys(f):
                    ds = f[key]
                    for a in range(0, len(ds), block):
                        try:
                            ds[a:a + block]
                        except OSError as err:
                            damaged.append(f"{shard}: {key} rows {a}:{min(a + block, len(ds))} ({err})")
        except OSError as err:
            damaged.append(f"{shard}: unreadable ({err})")
    return Verified(sum(d.num_chunks for d in summary.datasets), len(summary.datasets), len(summary.shards),
                    damaged, summary.stored, time.monotonic() - start)


def caches_in(path: str | Path) -> list[Path]:
    """The caches a path names: the file itself, or every split's manifest in a cache directory."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.glob("*.h5") if h5py.is_hdf5(p))
        if not found:
            raise InputError(path, "no cache (*.h5) in this directory")
        return found
    if not path.exists():
        raise InputError(path, "no such cache (a split's .h5, a shard, or a cache directory)")
    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 file (truncated or foreign): not a cache")
    return [path]


def size(n: float) -> str:
    """Bytes in words: 4.2 MB, 950 B."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def as_json(summary: CacheSummary, verified: Verified | None = None) -> dict:
    """The summary (and verification) as plain JSON values."""
    out = {"path": str(summary.path), "samples": summary.samples, "stored_bytes": summary.stored,
           "shards": [{"path": str(s), "fingerprint": p} for s, p in zip(summary.shards, summary.fingerprints)],
           "datasets": [{"key": d.key, "shape": list(d.shape), "dtype": d.dtype, "compression": d.compression,
                         "chunks": list(d.chunks) if d.chunks else None, "stored_bytes": d.stored,
                         "bytes_per_sample": round(d.per_sample, 1), "num_chunks": d.num_chunks}
                        for d in summary.datasets],
           "params": summary.params}
    if verified is not None:
        out["verify"] = {"chunks": verified.chunks, "datasets": verified.datasets, "shards": verified.shards,
                         "damaged": verified.damaged, "seconds": round(verified.seconds, 2)}
    return out

