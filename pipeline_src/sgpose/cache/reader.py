"""Read a finished cache: `open_cache` / `load_cache` (validated, whole arrays), and `CacheBatches`:
batches read on demand, so training and inference never need the whole cache
in memory (full COCO's train cache is ~300 GB for SimpleBaseline-R50 in fp16).

A `CacheBatches` item is one whole batch (a list of sample indices, sorted); a `DataLoader` over it
with `batch_size=None` and the batches as its sampler keeps the caller's (seeded) order and reads
in `num_workers` processes. Each process opens its own read-only handles lazily on first use: a
handle is never shared across `fork`, and the dataset pickles without one (spawn).

Reads go to the shard files directly (a manifest's virtual datasets resolve every selection through
HDF5's VDS layer, several times slower for scattered rows), one `read_direct` per run of consecutive
samples into a preallocated array. With `decoders` > 0 the one-sample chunks of the large datasets are
read raw (`read_direct_chunk`) and decoded on that many threads (lz4 and Fletcher-32, `cache.chunks`:
the writer's encoders in reverse, outside the GIL, where HDF5 runs its filters one chunk at a time under
h5py's lock). In a reader process the batch is read into shared memory, so handing it to the training
process copies nothing. A small cache can be read into memory once (`preload`). A read that fails (a
chunk failing its checksum, a damaged file) is an InputError naming the shard.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from sgpose.cache import chunks
from sgpose.cache.format import dataset_keys, num_features, read_attrs
from sgpose.cache.shards import check_shards
from sgpose.core.errors import InputError, reading
from sgpose.models.features import FeatureInfo, feature_info, select
from sgpose.models.simple_baseline import NUM_DECONV
from sgpose.runtime import interrupt, threads

TRAIN_KEYS = ("heatmaps", "target", "target_weight", "joints")  # + feat/*


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
        try:
            check_shards(path, h5)
        except ValueError:
            h5.close()
            raise
    return h5


def load_cache(path: str | Path, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read datasets fully into memory (all by default)."""
    with open_cache(path) as h5:
        names = dataset_keys(h5) if keys is None else keys
        missing = [k for k in names if k not in h5]
        if missing:
            raise KeyError(f"{path}: cache has no datasets {missing}")
        with reading(path, "cache"):
            return {k: h5[k][()] for k in names}


def feature_keys(h5: h5py.File, prefix: str = "") -> list[str]:
    """`{prefix}feat/0..n-1`, highest resolution first (prefix `flip/` for the mirrored crops), or
    `{prefix}trunk` where the cache stores a SimpleBaseline's trunk instead (`cache.store: trunk`)."""
    if f"{prefix}trunk" in h5:
        return [f"{prefix}trunk"]
    return [f"{prefix}feat/{i}" for i in range(num_features(h5, f"{prefix}feat"))]


def runs(idx: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of consecutive values in sorted `idx`: (first value, stop value, position in idx)."""
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(idx)]])
    return [(int(idx[a]), int(idx[b - 1]) + 1, int(a)) for a, b in zip(starts, stops)]


class CacheBatches(Dataset):
    """dataset[indices] -> {cache dataset name: tensor of those samples} (fp16 as float32; `as_stored`:
    as fp16, which `compute.to_device` converts on the device, so that batches cross from the reader
    processes and over the bus at half the bytes: twice the samples/s of a reader worker)."""

    def __init__(self, path: str | Path, keys: Sequence[str] = TRAIN_KEYS, prefixes: Sequence[str] = ("",),
                 preload: bool = False, as_stored: bool = False, decoders: int = 0):
        self.path, self.as_stored, self.decoders = Path(path), as_stored, decoders
        with open_cache(self.path) as h5, reading(self.path, "cache"):  # validates the file once, then closes
            names = [*keys, *(k for prefix in prefixes for k in feature_keys(h5, prefix))]
            missing = [k for k in names if k not in h5]
            if missing:
                raise KeyError(f"{self.path}: cache has no datasets {missing}")
            self.attrs = read_attrs(h5)
            self.keys = names
            self.num_samples = int(self.attrs.get("num_samples", len(h5[names[0]]) if names else 0))
            self.shapes = {k: tuple(h5[k].shape[1:]) for k in names}
            self.dtypes = {k: h5[k].dtype for k in names}
            files = self.attrs.get("shard_files")
            self.sources = [self.path.parent / f for f in files] if files else [self.path]
            self.starts = np.asarray(self.attrs.get("shard_starts", [0]), dtype=np.int64)
        self.memory: dict[str, np.ndarray] | None = None
        self._files: list[h5py.File] | None = None
        self._datasets: list[dict[str, h5py.Dataset]] | None = None
        self._pid: int | None = None
        self._direct: list[dict[str, str]] | None = None
        self._pool: ThreadPoolExecutor | None = None
        if preload:
            self.load()

    def load(self) -> None:
        """Read the selected datasets into memory (`nbytes`); later batches come from there."""
        with h5py.File(self.path, "r") as h5, reading(self.path, "cache"):
            self.memory = {k: h5[k][()] for k in self.keys}

    def __len__(self) -> int:
        return self.num_samples

    @property
    def nbytes(self) -> int:
        """Bytes of the selected datasets, uncompressed: what `preload` holds in memory."""
        return sum(int(np.prod(s)) * self.dtypes[k].itemsize for k, s in self.shapes.items()) * self.num_samples

    @property
    def sample_nbytes(self) -> int:
        """Bytes of one sample as a batch holds it (fp16 as float32 unless `as_stored`)."""
        size = {k: 4 if self.dtypes[k] == np.float16 and not self.as_stored else self.dtypes[k].itemsize
                for k in self.keys}
        return sum(int(np.prod(s)) * size[k] for k, s in self.shapes.items())

    @property
    def views(self) -> int:
        """Cached views per instance (train caches with cache.train_views > 1), interleaved."""
        return int(self.attrs.get("views", 1))

    def feature_info(self, prefix: str = "") -> list[FeatureInfo]:
        """The stored backbone features (level and channels of each `feat/i`): what the refiner is built for.
        A trunk cache: the features its SimpleBaseline's head makes (`trunk_head`), of `cache.feature_levels`."""
        levels = (self.attrs.get("cache") or {}).get("feature_levels")
        if self.trunk:
            channels = self.attrs["backbone"]["deconv_channels"]
            return select(feature_info([channels] * NUM_DECONV), levels)
        channels = [self.shapes[k][0] for k in self.keys if k.startswith(f"{prefix}feat/")]
        return feature_info(channels, levels)

    @property
    def trunk(self) -> bool:
        """Whether the batches hold `trunk` instead of `feat/*` (`cache.store: trunk`)."""
        return "trunk" in self.keys

    def _handles(self) -> list[dict[str, h5py.Dataset]]:
        """Per shard, its datasets by key (looking one up costs ~10% of reading a sample's chunk)."""
        if self._files is None or self._pid != os.getpid():  # first use in this process (or a forked child)
            files: list[h5py.File] = []
            datasets: list[dict[str, h5py.Dataset]] = []
            try:  # a damaged shard: an error naming it, and no handle left open
                for path in self.sources:
                    with reading(path, "cache shard"):
                        files.append(f := h5py.File(path, "r"))
                        datasets.append({k: f[k] for k in self.keys} if len(f.keys()) else {})
            except BaseException:
                for f in files:
                    f.close()
                raise
            self._files, self._datasets, self._pid = files, datasets, os.getpid()
            self._direct = [{k: c for k, ds in d.items() if (c := direct_compression(ds))} for d in datasets]
            self._pool = ThreadPoolExecutor(self.decoders, thread_name_prefix="cache-decode") if self.decoders else None
        return self._datasets

    def __getitem__(self, indices) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= self.num_samples):
            raise IndexError(f"{self.path}: batch indices must be sorted, unique and in [0, {self.num_samples})")
        if self.memory is not None:
            return {k: _as_tensor(v[idx], self.as_stored) for k, v in self.memory.items()}
        tensors = {k: _empty((len(idx), *self.shapes[k]), self.dtypes[k]) for k in self.keys}
        out = {k: v.numpy() for k, v in tensors.items()}
        which = np.searchsorted(self.starts, idx, side="right") - 1
        for shard in np.unique(which):
            datasets, offset = self._handles()[shard], int(self.starts[shard])
            direct = self._direct[shard] if self._pool is not None else {}
            pos0 = int(np.searchsorted(which, shard))
            with reading(self.sources[shard], "cache shard"):
                for a, b, pos in runs(idx[which == shard] - offset):
                    for k, ds in datasets.items():
                        if k not in direct:
                            ds.read_direct(out[k], np.s_[a:b], np.s_[pos0 + pos:pos0 + pos + b - a])
                tasks = [(k, int(i), pos0 + j) for k in direct for j, i in enumerate(idx[which == shard] - offset)]
                for _ in self._pool.map(lambda task: _decode_into(datasets[task[0]], task[1], out[task[0]][task[2]],
                                                                  direct[task[0]]), tasks) if tasks else ():
                    pass
        return {k: _as_float(v, self.as_stored) for k, v in tensors.items()}

    def __getstate__(self) -> dict:
        # never pickle an open handle (nor the threads that use them)
        return {**self.__dict__, "_files": None, "_datasets": None, "_pid": None, "_direct": None, "_pool": None}

    def close(self) -> None:
        """Close this process's handles and decoder threads (the next read reopens them)."""
        if self._files is not None and self._pid == os.getpid():
            if self._pool is not None:
                self._pool.shutdown()
            for f in self._files:
                f.close()
        self._files = self._datasets = self._pid = self._direct = self._pool = None


def direct_compression(ds: h5py.Dataset) -> str | None:
    """`cache.compression` of a dataset whose chunks `chunks.decode_chunk` reads (one sample per chunk,
    lz4 then Fletcher-32, or Fletcher-32 alone), else None (HDF5's filters read it)."""
    if ds.chunks is None or ds.chunks[0] != 1 or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
        return None
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return {(LZ4_FILTER, h5py.h5z.FILTER_FLETCHER32): "lz4", (h5py.h5z.FILTER_FLETCHER32,): "none"}.get(tuple(filters))


LZ4_FILTER = 32004  # hdf5plugin's LZ4 filter id (`chunks.lz4_chunk` writes its frame)


def _decode_into(ds: h5py.Dataset, i: int, out: np.ndarray, compression: str) -> None:
    """Sample `i`'s chunk of `ds` read raw and decoded into `out` (one sample); a chunk stored with a
    filter skipped (its mask) is left to HDF5."""
    mask, raw = ds.id.read_direct_chunk((i, *(0,) * (ds.ndim - 1)))
    if mask:
        ds.read_direct(out[None], np.s_[i:i + 1])
        return
    out[...] = np.frombuffer(chunks.decode_chunk(raw, compression, out.nbytes), out.dtype).reshape(out.shape)


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
    """An uninitialised batch array as a tensor; in a DataLoader worker in shared memory, where the hand-over
    to the training process would otherwise copy it (what torch's default_collate does for its batches)."""
    dt = torch.from_numpy(np.empty(0, dtype)).dtype
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dt)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * np.dtype(dtype).itemsize)
    return torch.empty(0, dtype=dt).set_(storage).view(shape)


def _as_tensor(array: np.ndarray, as_stored: bool = False) -> torch.Tensor:
    """fp16 (the cache's storage type) as float32 unless `as_stored`; everything else (float64 crop meta)
    as stored."""
    return _as_float(torch.from_numpy(np.ascontiguousarray(array)), as_stored)


def _as_float(tensor: torch.Tensor, as_stored: bool = False) -> torch.Tensor:
    return tensor.float() if tensor.dtype == torch.float16 and not as_stored else tensor


def features(batch: dict[str, torch.Tensor], prefix: str = "") -> list[torch.Tensor]:
    """The feature list of a batch, highest resolution first."""
    head = f"{prefix}feat/"
    keys = sorted((k for k in batch if k.startswith(head)), key=lambda k: int(k[len(head):]))
    return [batch[k] for k in keys]


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    """[0..bs-1], [bs..2bs-1], ...: inference order."""
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, views: int = 1) -> list[list[int]]:
    """One epoch's batches over `n` instances: a seeded permutation cut into batches, each sorted for
    reading; with `views` cached views per instance, one view per instance drawn for this epoch
    (sample i * views + v)."""
    order = torch.randperm(n, generator=generator)
    if views > 1:
        order = order * views + torch.randint(0, views, (n,), generator=generator)
    return [order[i:i + batch_size].sort().values.tolist() for i in range(0, n, batch_size)]


def batch_loader(dataset: CacheBatches, batches: list[list[int]], num_workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """Read `batches` in this order, in `num_workers` processes; `pin_memory` when batches go to a GPU."""
    return DataLoader(dataset, batch_size=None, sampler=batches, num_workers=threads.loader_workers(num_workers),
                      pin_memory=pin_memory, persistent_workers=False)


class EpochBatches(Sampler):
    """The current epoch's batches: the sampler of a loader whose workers outlive the epoch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def prefetch_factor(budget: float, workers: int, batch_bytes: int) -> int:
    """Batches each of `workers` reader processes may hold ready so that together they hold at most
    `budget` bytes (the DataLoader's own default is 2 batches per worker, whatever their size); at
    least 1, the least a DataLoader with workers takes."""
    return max(1, int(budget // max(workers * batch_bytes, 1)))


class EpochLoader:
    """`loader(batches)` -> an iterable of those batches, read by worker processes started once for
    every epoch (training): a restart per epoch forks `num_workers` processes that reopen every shard
    and refill the prefetch queue, seconds per epoch on a GPU node. The dataset is pickled to the
    workers once: it must not change between epochs (CacheBatches does not). `prefetch`: batches each
    worker holds ready (`prefetch_factor`); the workers ignore SIGTERM (`runtime.interrupt`)."""

    def __init__(self, dataset: CacheBatches, num_workers: int = 0, pin_memory: bool = False, prefetch: int = 2):
        self.order, workers = EpochBatches(), threads.loader_workers(num_workers)
        self.loader = DataLoader(dataset, batch_size=None, sampler=self.order, num_workers=workers,
                                 pin_memory=pin_memory, persistent_workers=workers > 0,
                                 prefetch_factor=prefetch if workers else None, worker_init_fn=interrupt.worker_init)

    def __call__(self, batches: list[list[int]]) -> DataLoader:
        self.order.batches = [list(b) for b in batches]
        return self.loader
