"""The HDF5 cache format (docs/architecture.md, "HDF5 cache"): the one table of cached datasets, their
dtypes, the compression choices and how attributes are encoded. Writer, shards and reader use it.

One file per (dataset, backbone, split). Datasets: `heatmaps`, `feat/0..n-1` (highest
resolution first; a SimpleBaseline's train split with `cache.store: trunk`: `trunk`, the map its frozen
deconv head starts from, attribute `store`), `target` in the cache dtype; `target_weight`, `joints`, `meta/*`. Chunks hold
one sample (the refiner reads random samples); every dataset carries HDF5's per-chunk Fletcher-32
checksum, so a read of a damaged chunk fails (an InputError naming the file) instead of returning
other numbers. With the flip test on, `flip/heatmaps` and
`flip/feat/0..n-1` hold the raw outputs for the horizontally mirrored crops (evaluation splits). A
file is complete when its `complete` attribute is set (last).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import h5py
import hdf5plugin  # registers the lz4 / blosc filters with HDF5 (writing and reading)
import numpy as np

from sgpose.core.modes import Compression

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
TRUNK_KEYS = ("trunk", "flip/trunk")  # `cache.store: trunk`: in place of feat/* (flip/feat/*)
# `cache.compression` -> h5py create_dataset filter arguments for the large datasets. lz4 and blosc
# come from hdf5plugin (imported above: a reader needs it too); benchmarks/cache_throughput.py and
# docs/scale.md have the measurements behind the default.
COMPRESSION: dict[Compression, dict[str, Any]] = {
    Compression.NONE: {}, Compression.GZIP: {"compression": "gzip", "compression_opts": 1},
    Compression.LZF: {"compression": "lzf"}, Compression.LZ4: dict(hdf5plugin.LZ4()),
    Compression.BLOSC_LZ4: dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)),
    Compression.BLOSC_ZSTD: dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE)),
}


def dtype_of(key: str, cache_dtype: str) -> np.dtype:
    """The stored dtype of dataset `key`: the cache dtype for the large ones, else its fixed one."""
    if key in (*LARGE, *TRUNK_KEYS) or key == "flip/heatmaps" or key.startswith(("feat/", "flip/feat/")):
        return np.dtype(cache_dtype)
    if key not in FIXED_DTYPES:
        raise KeyError(f"unknown cache dataset {key!r}; expected {', '.join(REQUIRED)}, feat/<i> or trunk "
                       "or flip/heatmaps, flip/feat/<i>")
    return np.dtype(FIXED_DTYPES[key])



def untimed(layout: h5py.VirtualLayout) -> h5py.VirtualLayout:
    """`layout` whose virtual dataset carries no creation or modification time, so that a manifest's bytes
    are a function of its shards (h5py turns HDF5's object timestamps off for plain datasets, not for
    virtual ones; groups store none in the version-1 object headers of h5py's default `libver`)."""
    layout.dcpl.set_obj_track_times(False)
    return layout


def write_attrs(h5: h5py.File, attrs: Mapping[str, Any]) -> None:
    """Store attributes: dicts as JSON strings, lists as arrays (`read_attrs` decodes them)."""
    for key, value in attrs.items():
        h5.attrs[key] = json.dumps(value) if isinstance(value, dict) else value


def read_attrs(h5: h5py.File) -> dict[str, Any]:
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


def num_features(h5: h5py.File, group: str = "feat") -> int:
    """How many feature levels `feat/0..n-1` (or `flip/feat/0..n-1`) the cache holds."""
    return len(h5[group]) if group in h5 else 0


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


def has_flip(h5: h5py.File) -> bool:
    """True if the cache holds the mirrored crops' outputs (`flip/heatmaps`, `flip/feat/*`)."""
    return "flip/heatmaps" in h5


def stores_trunk(h5: h5py.File) -> bool:
    """True if the cache holds a SimpleBaseline's trunk map instead of its features (`cache.store: trunk`)."""
    return "trunk" in h5
