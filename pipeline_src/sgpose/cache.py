"""HDF5 cache of the frozen backbone's outputs (docs/architecture.md, "HDF5 cache").

One file per (dataset, backbone, split). Datasets: `heatmaps`, `feat/0..n-1` (highest
resolution first), `target` in the cache dtype; `target_weight`, `joints`, `meta/*`. Chunks hold
one sample (the refiner reads random samples); every dataset carries HDF5's per-chunk Fletcher-32
checksum, so a read of a damaged chunk fails (an InputError naming the file) instead of returning
other numbers. With the flip test on, `flip/heatmaps` and
`flip/feat/0..n-1` hold the raw outputs for the horizontally mirrored crops (val split). The file
is written under a temporary name and renamed when complete, and the `complete` attribute is set
last: a half-written cache is never mistaken for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import hdf5plugin  # registers the lz4 / blosc filters with HDF5 (writing and reading)
import numpy as np

from sgpose.errors import DiskFullError, InputError, disk_full, free_bytes, mount_point, reading
from sgpose.io import atomic_path

log = logging.getLogger(__name__)

# datasets stored in the cache dtype (fp16 by default); everything else has a fixed dtype
LARGE = ("heatmaps", "target")
FIXED_DTYPES = {
    "target_weight": np.float32, "joints": np.float32, "meta/center": np.float64,
    "meta/scale": np.float64, "meta/bbox": np.float64, "meta/image_id": np.int64,
    "meta/ann_id": np.int64, "meta/score": np.float32, "meta/view": np.int64, "meta/rotation": np.float64,
    "meta/flipped": np.int8,
}
# train caches with cache.train_views > 1: which view a sample is and its augmentation draw (degrees;
# a flipped view's meta/center is in the mirrored image, x' = width - 1 - x)
OPTIONAL = ("meta/view", "meta/rotation", "meta/flipped")
REQUIRED = (*LARGE, *(k for k in FIXED_DTYPES if k not in OPTIONAL))
# `cache.compression` -> h5py create_dataset filter arguments for the large datasets. lz4 and blosc
# come from hdf5plugin (imported above: a reader needs it too); benchmarks/cache_throughput.py and
# docs/scale.md have the measurements behind the default.
# bytes kept free beyond a batch's uncompressed size: HDF5's chunk caches (1 MiB per dataset) and metadata
HEADROOM = 8 << 20
COMPRESSION: dict[str, dict[str, Any]] = {
    "none": {}, "gzip": {"compression": "gzip", "compression_opts": 1}, "lzf": {"compression": "lzf"},
    "lz4": dict(hdf5plugin.LZ4()),
    "blosc_lz4": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    "blosc_zstd": dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE)),
}


def _dtype(key: str, cache_dtype: str) -> np.dtype:
    if key in LARGE or key == "flip/heatmaps" or key.startswith(("feat/", "flip/feat/")):
        return np.dtype(cache_dtype)
    if key not in FIXED_DTYPES:
        raise KeyError(f"unknown cache dataset {key!r}; expected {', '.join(REQUIRED)}, feat/<i> "
                       "or flip/heatmaps, flip/feat/<i>")
    return np.dtype(FIXED_DTYPES[key])


class CacheWriter:
    """Preallocates N samples on the first batch and appends batches of arrays keyed by dataset name."""

    def __init__(self, h5: h5py.File, num_samples: int, dtype: str = "float16", compression: str = "lz4"):
        if compression not in COMPRESSION:
            raise ValueError(f"cache compression {compression!r}; expected one of {', '.join(COMPRESSION)}")
        self.h5 = h5
        self.n = num_samples
        self.dtype = dtype
        self.compression = compression
        self.count = 0
        self.overflowed: set[str] = set()  # datasets already warned about

    def _create(self, batch: Mapping[str, np.ndarray]) -> None:
        for key, arr in batch.items():
            dt = _dtype(key, self.dtype)
            shape = (self.n, *arr.shape[1:])
            big = int(np.prod(arr.shape[1:])) > 64  # small per-sample rows: HDF5 picks the chunks
            self.h5.create_dataset(key, shape=shape, dtype=dt, chunks=(1, *arr.shape[1:]) if big else True,
                                   fletcher32=True, **(COMPRESSION[self.compression] if big else {}))

    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        """Write the next len(batch) samples; every batch has the same keys. An empty cache (an empty
        shard) holds no datasets at all."""
        sizes = {len(v) for v in batch.values()}
        if len(sizes) != 1:
            raise ValueError(f"cache batch with unequal lengths {sizes}")
        b = sizes.pop()
        if b == 0:
            return
        if self.count == 0:
            self._create(batch)
        if self.count + b > self.n:
            raise ValueError(f"cache overflow: {self.count + b} samples for {self.n} preallocated")
        self._check_space(batch)
        for key, arr in batch.items():
            ds = self.h5[key]
            with np.errstate(over="ignore"):  # numpy converts to fp16 about 2x faster than HDF5 does
                stored = np.asarray(arr, dtype=ds.dtype)
            if ds.dtype == np.float16 and key not in self.overflowed and np.isinf(stored).any() \
                    and np.isfinite(arr).all():
                self.overflowed.add(key)
                log.warning("%s: %s has values beyond the float16 range (|x| > 65504), stored as inf; "
                            "cache.dtype: float32 keeps them", self.h5.filename, key)
            ds[self.count:self.count + b] = stored
        self.count += b

    def _check_space(self, batch: Mapping[str, np.ndarray]) -> None:
        """Refuse a batch the disk cannot take (its uncompressed size plus HEADROOM): HDF5 hitting ENOSPC
        itself swallows the errors as it evicts chunks and then crashes closing the file (segfault)."""
        free = free_bytes(self.h5.filename)
        if free < sum(np.asarray(v).nbytes for v in batch.values()) + HEADROOM:
            raise DiskFullError(self.h5.filename, free, mount_point(self.h5.filename))

    def finish(self, attrs: Mapping[str, Any]) -> None:
        """Check completeness, write the attributes, and mark the file complete (last)."""
        if self.count != self.n:
            raise ValueError(f"cache holds {self.count} samples, expected {self.n}")
        missing = [k for k in REQUIRED if k not in self.h5]
        if self.n and (missing or "feat" not in self.h5):
            raise ValueError(f"cache lacks datasets {missing or ['feat/*']}")
        if "flip" in self.h5 and ("heatmaps" not in self.h5["flip"] or num_features(self.h5, "flip/feat")
                                  != num_features(self.h5)):
            raise ValueError("cache flip/* must hold flip/heatmaps and as many flip/feat/<i> as feat/<i>")
        for key, value in attrs.items():
            self.h5.attrs[key] = json.dumps(value) if isinstance(value, dict) else value  # lists: arrays
        self.h5.attrs["num_samples"] = self.n
        self.h5.attrs["complete"] = True


@contextlib.contextmanager
def cache_writer(path: str | Path, num_samples: int, attrs: Mapping[str, Any],
                 dtype: str = "float16", compression: str = "lz4") -> Iterator[CacheWriter]:
    """Open a CacheWriter on a temporary file; on success the file is finished and renamed to `path`.
    On any failure the file is closed here and deleted (a full disk: a DiskFullError naming it)."""
    with atomic_path(path) as tmp:
        h5 = h5py.File(tmp, "w")
        try:
            writer = CacheWriter(h5, num_samples, dtype, compression)
            yield writer
            writer.finish(attrs)
            h5.close()
        except BaseException as err:
            full = disk_full(err, tmp)  # measured before the file is freed
            _abandon(h5, tmp)
            if full is not None:
                raise full from err
            raise


def _abandon(h5: h5py.File, tmp: Path) -> None:
    """Close a failed write's file for good. After a write error HDF5 retries flushing its buffers at
    every close, and an HDF5 file still open at interpreter exit crashes it (segfault): empty the file
    first (frees its space, so the final flush fits), then close, and drop a handle that still fails."""
    if tmp.exists():
        os.truncate(tmp, 0)
    for _ in range(3):
        try:
            if h5.id.valid:
                h5.close()
            return
        except Exception:  # noqa: BLE001 - a flush of a file being thrown away
            continue


def write_cache(path: str | Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any],
                dtype: str = "float16", compression: str = "lz4") -> None:
    """Write whole arrays (keys as in the file: `heatmaps`, `feat/0`, `meta/center`, ...) at once."""
    n = len(next(iter(arrays.values())))
    with cache_writer(path, n, attrs, dtype, compression) as writer:
        writer.append(arrays)


def open_cache(path: str | Path) -> h5py.File:
    """A finished cache opened read-only; a missing, non-HDF5 or incomplete file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: cache not found (has the cache stage run?)")
    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 file (truncated or foreign); rerun the cache stage")
    with reading(path, "cache"):
        h5 = h5py.File(path, "r")
    if not bool(h5.attrs.get("complete", False)):
        h5.close()
        raise ValueError(f"{path}: incomplete cache (no 'complete' mark); rerun the cache stage")
    if "shard_files" in h5.attrs:  # a manifest: a missing shard would read as zeros, never allow it
        from sgpose.shards import check_shards

        try:
            check_shards(path, h5)
        except ValueError:
            h5.close()
            raise
    return h5


def cache_attrs(h5: h5py.File) -> dict[str, Any]:
    """Attributes as Python values: JSON-encoded dicts decoded, arrays as lists."""
    out = {}
    for key, value in h5.attrs.items():
        if isinstance(value, str) and value[:1] == "{":
            value = json.loads(value)
        elif isinstance(value, (np.generic, np.ndarray)):
            value = value.tolist()
        out[key] = value
    return out


def dataset_keys(h5: h5py.File) -> list[str]:
    """All dataset names, nested ones as `feat/0`, `meta/center`; features in index order."""
    keys: list[str] = []
    h5.visititems(lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None)
    def order(k: str) -> tuple:
        base = k.removeprefix("flip/")
        level = int(base.split("/")[1]) if base.startswith("feat/") else -1
        return (k.startswith("flip/"), k.split("/")[0], base.split("/")[0], level, k)
    return sorted(keys, key=order)


def load_cache(path: str | Path, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read datasets fully into memory (all by default)."""
    with open_cache(path) as h5:
        names = dataset_keys(h5) if keys is None else keys
        missing = [k for k in names if k not in h5]
        if missing:
            raise KeyError(f"{path}: cache has no datasets {missing}")
        with reading(path, "cache"):
            return {k: h5[k][()] for k in names}


def damaged_chunks(h5: h5py.File, block: int = 256) -> str | None:
    """Read every chunk of every dataset (`block` samples at a time: bounded memory), so HDF5 checks
    each chunk's Fletcher-32 checksum; None when all read back, else which dataset and rows failed."""
    for key in dataset_keys(h5):
        ds = h5[key]
        for a in range(0, len(ds), block):
            try:
                ds[a:a + block]
            except OSError as err:
                return f"{key} rows {a}:{min(a + block, len(ds))} fail their checksum ({err})"
    return None


def num_features(h5: h5py.File, group: str = "feat") -> int:
    """How many feature levels `feat/0..n-1` (or `flip/feat/0..n-1`) the cache holds."""
    return len(h5[group]) if group in h5 else 0


def has_flip(h5: h5py.File) -> bool:
    """True if the cache holds the mirrored crops' outputs (`flip/heatmaps`, `flip/feat/*`)."""
    return "flip/heatmaps" in h5
