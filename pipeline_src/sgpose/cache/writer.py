"""Write a cache file: preallocated datasets filled batch by batch, under a temporary name renamed when
complete, the `complete` attribute set last, so a half-written cache is never mistaken for a finished one.
Every dataset is written with its Fletcher-32 checksum (`format`); a batch the disk cannot take is
refused before HDF5 sees it (a DiskFullError naming the file). No cached number is NaN or infinite: a
batch holding one, or values float16 would store as infinity, is refused (a NonFiniteError naming the
file, the dataset and the samples), and the shard is not written.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np
import torch

from sgpose.cache import chunks
from sgpose.cache.format import COMPRESSION, REQUIRED, dtype_of, num_features, write_attrs
from sgpose.core.errors import DiskFullError, NonFiniteError, disk_full, free_bytes, mount_point
from sgpose.core.io import TMP_MARK, atomic_path
from sgpose.core.modes import Compression
from sgpose.runtime import threads

# bytes kept free beyond a batch's uncompressed size: HDF5's chunk caches (1 MiB per dataset) and metadata
HEADROOM = 8 << 20
FP16_INF = 65520.0  # the smallest magnitude float16 rounds to inf (its largest finite value is 65504)
OVERFLOW = ("%s: %s has values beyond the float16 range (|x| > 65504), which it stores as inf: refused; "
            "cache.dtype: float32 keeps them")


def stored(arr: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """`arr` in the dataset's dtype, and whether finite values overflowed float16. Float arrays convert
    through torch (vectorised and threaded: numpy's float16 conversion alone held the cache stage to about
    40 samples/s of SimpleBaseline-R50 features on 2 cores)."""
    arr = np.asarray(arr)
    if arr.dtype == dtype:
        return arr, False
    if arr.dtype.kind != "f" or np.dtype(dtype).kind != "f" or arr.size == 0:
        return np.asarray(arr, dtype=dtype), False
    src = torch.from_numpy(np.ascontiguousarray(arr))
    # a NaN or inf in the input makes amax non-finite: only finite inputs that overflow are reported
    overflow = np.dtype(dtype) == np.float16 and FP16_INF <= float(src.abs().amax()) < float("inf")
    return src.to(torch.from_numpy(np.empty(0, dtype)).dtype).numpy(), overflow


def peak(arr: np.ndarray) -> float:
    """max |x| of a float array: NaN or inf when the array holds one (0 for other dtypes and empty arrays)."""
    arr = np.asarray(arr)
    if arr.dtype.kind != "f" or arr.size == 0:
        return 0.0
    return float(torch.from_numpy(np.ascontiguousarray(arr)).abs().amax())  # NaN propagates; threaded


class CacheWriter:
    """Preallocates N samples on the first batch and appends batches of arrays keyed by dataset name.
    The one-sample chunks of the large datasets are encoded (lz4 or none, + Fletcher-32) on `encoders`
    threads (`sgpose.cache.chunks`) and written as they are; HDF5's pipeline compresses the rest."""

    def __init__(self, h5: h5py.File, num_samples: int, dtype: str = "float16", compression: str = Compression.LZ4,
                 encoders: int | None = None):
        if compression not in COMPRESSION:
            raise ValueError(f"cache compression {compression!r}; expected one of {', '.join(COMPRESSION)}")
        self.h5 = h5
        self.n = num_samples
        self.dtype = dtype
        self.compression = compression
        self.count = 0
        self.direct: set[str] = set()  # datasets whose chunks are encoded here
        self.encoders = threads.pool_threads() if encoders is None else encoders
        self._pool: ThreadPoolExecutor | None = None

    def _create(self, batch: Mapping[str, np.ndarray]) -> None:
        for key, arr in batch.items():
            dt = dtype_of(key, self.dtype)
            shape = (self.n, *arr.shape[1:])
            big = int(np.prod(arr.shape[1:])) > 64  # small per-sample rows: HDF5 picks the chunks
            self.h5.create_dataset(key, shape=shape, dtype=dt, chunks=(1, *arr.shape[1:]) if big else True,
                                   fletcher32=True, **(COMPRESSION[self.compression] if big else {}))
            if big and self.compression in chunks.DIRECT and self.encoders > 0:
                self.direct.add(key)

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
        encoded: dict[str, np.ndarray] = {}
        for key, arr in batch.items():
            ds = self.h5[key]
            self._check_finite(key, arr, ds.dtype, b)
            values, _ = stored(arr, ds.dtype)
            if key in self.direct:
                encoded[key] = np.ascontiguousarray(values)
            else:
                ds[self.count:self.count + b] = values
        self._write_direct(encoded)
        self.count += b

    def _write_direct(self, arrays: Mapping[str, np.ndarray]) -> None:
        """One chunk per sample of each array, encoded on the pool and written in sample order, as the
        dataset's declared filters would have stored it (HDF5 reads it back through them)."""
        if not arrays:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.encoders, thread_name_prefix="cache-chunks")
        tasks = [(key, i) for key, arr in arrays.items() for i in range(len(arr))]
        encoded = self._pool.map(lambda task: chunks.encode_chunk(arrays[task[0]][task[1]].tobytes(), self.compression),
                                 tasks)
        datasets = {key: self.h5[key].id for key in arrays}
        for (key, i), data in zip(tasks, encoded):
            ds = datasets[key]
            ds.write_direct_chunk((self.count + i, *(0,) * (ds.rank - 1)), data)

    def _check_finite(self, key: str, arr: np.ndarray, dtype: np.dtype, b: int) -> None:
        """Refuse a batch holding NaN or inf, or finite values that float16 stores as inf (> 65504)."""
        top = peak(arr)
        samples, path = f"samples {self.count}-{self.count + b - 1}", self.h5.filename.rsplit(TMP_MARK, 1)[0]
        if not np.isfinite(top):
            raise NonFiniteError(path, f"{key} of {samples} holds non-finite values (NaN or inf): the "
                                 "backbone's outputs are broken (its weights, or its input); nothing is cached")
        if np.dtype(dtype) == np.float16 and top >= FP16_INF:
            raise NonFiniteError(path, f"{key} of {samples} holds values beyond the float16 range "
                                 f"(|x| up to {top:.4g} > 65504), which it would store as infinity; set "
                                 "cache.dtype: float32")

    def close(self) -> None:
        """Stop the encoder threads (the file is the caller's to close)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

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
        if self.n and (missing or ("feat" not in self.h5 and "trunk" not in self.h5)):  # trunk: cache.store
            raise ValueError(f"cache lacks datasets {missing or ['feat/* (or trunk)']}")
        if "flip" in self.h5 and ("heatmaps" not in self.h5["flip"] or num_features(self.h5, "flip/feat")
                                  != num_features(self.h5) or ("trunk" in self.h5) != ("trunk" in self.h5["flip"])):
            raise ValueError("cache flip/* must hold flip/heatmaps and as many flip/feat/<i> as feat/<i>")
        write_attrs(self.h5, attrs)
        self.h5.attrs["num_samples"] = self.n
        self.h5.attrs["complete"] = True


class BackgroundAppends:
    """A CacheWriter's appends on one thread, so that the caller computes the next batch meanwhile
    (h5py releases the GIL while HDF5 compresses and writes). At most `depth` batches wait; an error
    on the thread is raised at the caller's next append or at `join`."""

    def __init__(self, writer: CacheWriter, depth: int = 2):
        self.writer, self.error = writer, None
        self.queue: queue.Queue = queue.Queue(depth)
        self.thread = threading.Thread(target=self._run, name="cache-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:  # after an error the rest is drained, so `append` never blocks for good
                try:
                    self.writer.append(batch)
                except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                    self.error = err

    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        self._raise()
        self.queue.put(batch)

    def join(self) -> None:
        """Wait until every queued batch is written (or failed); raise the thread's error."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


@contextlib.contextmanager
def cache_writer(path: str | Path, num_samples: int, attrs: Mapping[str, Any], dtype: str = "float16",
                 compression: str = Compression.LZ4, background: bool = False,
                 encoders: int | None = None) -> Iterator[CacheWriter | BackgroundAppends]:
    """Open a CacheWriter on a temporary file; on success the file is finished and renamed to `path`.
    On any failure the file is closed here and deleted (a full disk: a DiskFullError naming it).
    `background`: appends run on a writer thread (BackgroundAppends), overlapping the caller's work.
    `encoders`: threads encoding the large datasets' chunks (default the stage's cores; 0: HDF5's filters)."""
    with atomic_path(path) as tmp:
        h5 = h5py.File(tmp, "w")
        appends = writer = None
        try:
            writer = CacheWriter(h5, num_samples, dtype, compression, encoders)
            appends = BackgroundAppends(writer) if background else None
            yield appends or writer
            if appends is not None:
                appends.join()
            writer.finish(attrs)
            h5.close()
        except BaseException as err:
            if appends is not None:  # the thread must be done with the file before it is abandoned
                with contextlib.suppress(BaseException):
                    appends.join()
                err = appends.error or err
            full = disk_full(err, tmp)  # measured before the file is freed
            _abandon(h5, tmp)
            if full is not None:
                raise full from err
            raise
        finally:
            if writer is not None:
                writer.close()


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
                dtype: str = "float16", compression: str = Compression.LZ4, encoders: int | None = None) -> None:
    """Write whole arrays (keys as in the file: `heatmaps`, `feat/0`, `meta/center`, ...) at once."""
    n = len(next(iter(arrays.values())))
    with cache_writer(path, n, attrs, dtype, compression, encoders=encoders) as writer:
        writer.append(arrays)
