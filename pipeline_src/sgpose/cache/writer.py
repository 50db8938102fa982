"""Write a cache file: preallocated datasets filled batch by batch, under a temporary name renamed when
complete, the `complete` attribute set last, so a half-written cache is never mistaken for a finished one.
Every dataset is written with its Fletcher-32 checksum (`format`); a batch the disk cannot take is
refused before HDF5 sees it (a DiskFullError naming the file).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from sgpose.cache.format import COMPRESSION, REQUIRED, dtype_of, num_features, write_attrs
from sgpose.errors import DiskFullError, disk_full, free_bytes, mount_point
from sgpose.io import atomic_path

log = logging.getLogger(__name__)

# bytes kept free beyond a batch's uncompressed size: HDF5's chunk caches (1 MiB per dataset) and metadata
HEADROOM = 8 << 20


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
            dt = dtype_of(key, self.dtype)
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
        write_attrs(self.h5, attrs)
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
