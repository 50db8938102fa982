"""Batches read from the HDF5 cache on demand, so training and inference never hold the whole cache.

Full COCO's train cache is ~300 GB (SimpleBaseline-R50, fp16): `load_cache` cannot hold it. A
`CacheBatches` item is one whole batch (a list of sample indices, sorted: h5py reads increasing
selections, and a sorted batch touches each chunk once); a `DataLoader` over it with
`batch_size=None` and the batches as its sampler keeps the caller's (seeded) order and reads in
`num_workers` processes. Each process opens its own read-only h5py handle lazily on first use:
a handle is never shared across `fork`, and the dataset pickles without one (spawn).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sgpose.cache import num_features, open_cache

TRAIN_KEYS = ("heatmaps", "target", "target_weight", "joints")  # + feat/*


def feature_keys(h5: h5py.File, prefix: str = "") -> list[str]:
    """`{prefix}feat/0..n-1`, highest resolution first (prefix `flip/` for the mirrored crops)."""
    return [f"{prefix}feat/{i}" for i in range(num_features(h5, f"{prefix}feat"))]


class CacheBatches(Dataset):
    """dataset[indices] -> {cache dataset name: float32 tensor of those samples} (`meta/*`: as stored)."""

    def __init__(self, path: str | Path, keys: Sequence[str] = TRAIN_KEYS, features: Sequence[str] = ("",)):
        self.path = Path(path)
        with open_cache(self.path) as h5:  # validates the file (and a manifest's shards) once, then closes
            names = [*keys, *(k for prefix in features for k in feature_keys(h5, prefix))]
            missing = [k for k in names if k not in h5]
            if missing:
                raise KeyError(f"{self.path}: cache has no datasets {missing}")
            self.keys = names
            self.num_samples = int(h5.attrs.get("num_samples", len(h5[names[0]]) if names else 0))
            self.shapes = {k: tuple(h5[k].shape[1:]) for k in names}
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.num_samples

    def feature_channels(self, prefix: str = "") -> list[int]:
        """Channels of each feature level (what the refiner is built for)."""
        return [self.shapes[k][0] for k in self.keys if k.startswith(f"{prefix}feat/")]

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():  # first use in this process (or a forked child)
            self._h5, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._h5

    def __getitem__(self, indices) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= self.num_samples):
            raise IndexError(f"{self.path}: batch indices must be sorted, unique and in [0, {self.num_samples})")
        contiguous = len(idx) and idx[-1] - idx[0] + 1 == len(idx)
        select = slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx
        h5 = self._file()
        return {k: _as_tensor(h5[k][select]) for k in self.keys}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_h5": None, "_pid": None}  # never pickle an open handle

    def close(self) -> None:
        """Close this process's handle (the next read reopens it)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = self._pid = None


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.float() if tensor.is_floating_point() else tensor


def features(batch: dict[str, torch.Tensor], prefix: str = "") -> list[torch.Tensor]:
    """The feature list of a batch, highest resolution first."""
    head = f"{prefix}feat/"
    keys = sorted((k for k in batch if k.startswith(head)), key=lambda k: int(k[len(head):]))
    return [batch[k] for k in keys]


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    """[0..bs-1], [bs..2bs-1], ...: inference order."""
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """One epoch's batches: a seeded permutation cut into batches, each sorted for reading."""
    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch_size].sort().values.tolist() for i in range(0, n, batch_size)]


def batch_loader(dataset: CacheBatches, batches: list[list[int]], num_workers: int = 0) -> DataLoader:
    """Read `batches` in this order, in `num_workers` processes; pinned memory when CUDA is there."""
    return DataLoader(dataset, batch_size=None, sampler=batches, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())
