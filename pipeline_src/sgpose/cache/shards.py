"""Sharded HDF5 cache: shard files plus a manifest of virtual datasets that presents them as one.

Full COCO train (149,813 persons at ~2 MB each for SimpleBaseline) is too big for one file written
in one go: an interruption would lose hours. The cache stage writes `<split>.shards/shard-00000.h5`,
... (`cache.shards[split]` files, each an ordinary cache file of a contiguous range of instances,
written atomically with `complete` set last; one Snakemake job each) and then the manifest at
`<split>.h5`: one HDF5 virtual dataset per cache dataset (`h5py.VirtualLayout`), same names and
attributes as a single-file cache, so `reader.open_cache` and
`reader.load_cache` read it unchanged. Shard names in the manifest are relative, so the cache directory
can be moved (HDF5 looks for relative sources beside the manifest).

Each shard records a `fingerprint`: the sha256 of everything its contents depend on (the cache
attributes: backbone parameters, checkpoint sha256, input size, cache parameters; the shard's
instance rows; the source of the code that computes it). A re-run keeps a shard only if it is a
complete HDF5 cache with the expected fingerprint and length, so an interrupted run resumes at the
first unfinished shard and a truncated, foreign, stale or damaged shard (a chunk failing its checksum:
every chunk of a kept shard is read back) is rebuilt, never read as data. The
manifest lists the shards' fingerprints and `open_cache` checks them, since a missing source of a
virtual dataset would otherwise read as zeros.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np
import pandas as pd

from sgpose.cache.format import damaged_chunks, dataset_keys, read_attrs, untimed, write_attrs
from sgpose.core.errors import InputError
from sgpose.core.io import atomic_path

MANIFEST_ONLY = ("shard_index", "shard_start", "fingerprint", "num_samples", "complete")


def shards_dir(manifest: str | Path) -> Path:
    """`cache/train.h5` -> `cache/train.shards` (the directory of its shards)."""
    return Path(manifest).with_suffix(".shards")


def shard_path(manifest: str | Path, index: int) -> Path:
    """The file of shard `index` of a manifest: `<split>.shards/shard-00000.h5`."""
    return shards_dir(manifest) / f"shard-{index:05d}.h5"


def shard_ranges(num_items: int, num_shards: int) -> list[tuple[int, int]]:
    """[(start, stop)] of `num_shards` contiguous, near-equal shards of `num_items` (a shard is empty
    when there are fewer items than shards). A fixed count, not a size: the workflow engines know
    every shard job before the instance tables exist."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    bounds = [num_items * i // num_shards for i in range(num_shards + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def code_digest(files: list[Path], root: Path) -> str:
    """sha256 over source files (named relative to `root`), in a fixed order: what the cache stage
    passes is its import closure (`sgpose.runtime.imports.module_files`, the files the DAG tracks for it)."""
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def rows_digest(rows: pd.DataFrame) -> str:
    """sha256 of a slice of the instance table (every column, keypoints included, row order kept)."""
    scalar = rows.drop(columns=["keypoints"], errors="ignore")
    digest = hashlib.sha256(",".join(scalar.columns).encode())
    digest.update(pd.util.hash_pandas_object(scalar, index=False).to_numpy().tobytes())
    if "keypoints" in rows and len(rows):
        digest.update(np.stack(rows["keypoints"].to_numpy()).astype(np.float64).tobytes())
    return digest.hexdigest()


def fingerprint(attrs: Mapping[str, Any], rows: pd.DataFrame, start: int, code: str) -> str:
    """What a shard's contents depend on, hashed: attributes, its instance rows and start, the code."""
    record = json.dumps({"attrs": attrs, "start": start, "rows": rows_digest(rows), "code": code},
                        sort_keys=True, default=str)
    return hashlib.sha256(record.encode()).hexdigest()


def shard_problem(path: Path, num_samples: int, expected: str, content: bool = True) -> str | None:
    """None if `path` is a finished shard with this fingerprint and length whose every chunk passes its
    checksum (`content`), else why it must be (re)built. The content check reads the whole shard back
    (0.36 s for the sample's 579-sample, 20 MiB train shard: ~60 MB/s per core, decompressing),
    far less than recomputing it; without it, only the header is read."""
    if not path.is_file():
        return "missing"
    if not h5py.is_hdf5(path):
        return "not an HDF5 file (truncated or foreign)"
    try:
        with h5py.File(path, "r") as h5:
            attrs = dict(h5.attrs)
            lengths = {len(h5[k]) for k in dataset_keys(h5)}
            if not bool(attrs.get("complete", False)):
                return "incomplete (no 'complete' mark)"
            if attrs.get("fingerprint") != expected:
                return "stale (written for other weights, parameters, instances or code)"
            if attrs.get("num_samples") != num_samples or lengths - {num_samples}:
                return f"holds {sorted(lengths)} samples, expected {num_samples}"
            damage = damaged_chunks(h5) if content else None
    except (OSError, KeyError, RuntimeError) as err:
        return f"unreadable ({err})"
    return f"damaged: {damage}" if damage else None


def manifest_current(manifest: Path, shards: list[Path], fingerprints: list[str], starts: list[int],
                     num_samples: int) -> bool:
    """True when `manifest` is complete and names exactly these shards, fingerprints, starts and size.
    Rewriting such a manifest would change only HDF5's timestamps, yet give DVC a new hash and re-run
    everything trained from the cache."""
    if not manifest.is_file() or not h5py.is_hdf5(manifest):
        return False
    try:
        with h5py.File(manifest, "r") as h5:
            a = h5.attrs
            return (bool(a.get("complete", False)) and int(a.get("num_samples", -1)) == num_samples
                    and list(a.get("shard_files", [])) == [s.relative_to(manifest.parent).as_posix() for s in shards]
                    and list(a.get("shard_fingerprints", [])) == fingerprints
                    and [int(x) for x in a.get("shard_starts", [])] == starts)
    except OSError:
        return False


def write_manifest(manifest: str | Path, shards: list[Path], starts: list[int], num_samples: int) -> bool:
    """Write `manifest` (atomically): virtual datasets over the shards, the shards' common attributes,
    their relative names and fingerprints, `complete` last. A current manifest is left untouched
    (`manifest_current`); returns whether it was written."""
    manifest = Path(manifest)
    files = [h5py.File(s, "r") for s in shards]
    try:
        if manifest_current(manifest, shards, [f.attrs["fingerprint"] for f in files], starts, num_samples):
            return False
        with atomic_path(manifest) as tmp, h5py.File(tmp, "w") as out:
            filled = [i for i, f in enumerate(files) if f.attrs.get("num_samples", 0) > 0]
            for key in dataset_keys(files[filled[0]]) if filled else []:
                _virtual(out, key, [files[i] for i in filled], [shards[i] for i in filled],
                         [starts[i] for i in filled], manifest.parent, num_samples)
            write_attrs(out, {k: v for k, v in read_attrs(files[0]).items() if k not in MANIFEST_ONLY})
            out.attrs["shard_files"] = [s.relative_to(manifest.parent).as_posix() for s in shards]
            out.attrs["shard_fingerprints"] = [f.attrs["fingerprint"] for f in files]
            out.attrs["shard_starts"] = starts
            out.attrs["num_samples"] = num_samples
            out.attrs["complete"] = True
        return True
    finally:
        for f in files:
            f.close()


def _virtual(out: h5py.File, key: str, files: list[h5py.File], shards: list[Path], starts: list[int],
             root: Path, num_samples: int) -> None:
    """One virtual dataset `key` of `num_samples` rows mapping each shard's rows at its start."""
    first = files[0][key]
    layout = h5py.VirtualLayout(shape=(num_samples, *first.shape[1:]), dtype=first.dtype)
    for f, path, start in zip(files, shards, starts):
        ds = f[key]
        if ds.shape[1:] != first.shape[1:] or ds.dtype != first.dtype:
            raise ValueError(f"{path}: {key} is {ds.dtype}{ds.shape[1:]}, other shards {first.dtype}{first.shape[1:]}")
        layout[start:start + len(ds)] = h5py.VirtualSource(path.relative_to(root).as_posix(), key, shape=ds.shape)
    out.create_virtual_dataset(key, untimed(layout))


def check_shards(manifest: Path, h5: h5py.File) -> None:
    """Every shard a manifest names is there, complete, and the one it was built from (fingerprint)."""
    for name, expected in zip(h5.attrs["shard_files"], h5.attrs["shard_fingerprints"]):
        path = Path(manifest).parent / name
        if not path.is_file() or not h5py.is_hdf5(path):
            raise InputError(path, f"a shard of {manifest} is missing or not HDF5; rerun the cache stage")
        try:
            with h5py.File(path, "r") as shard:
                ok = bool(shard.attrs.get("complete", False)) and shard.attrs.get("fingerprint") == expected
        except (OSError, KeyError, RuntimeError) as err:
            raise InputError(path, f"damaged shard of {manifest} ({err}); rerun the cache stage") from err
        if not ok:
            raise InputError(path, f"a shard of {manifest} is incomplete or not the one the manifest was "
                             "built from; rerun the cache stage")


def remove_strays(manifest: str | Path, keep: list[Path], live: Callable[[Path], bool] = lambda p: False) -> list[Path]:
    """Delete files in the shards directory that are not current shards (left by a larger shard
    count or a killed writer's temporary file), except those `live` says a running writer owns;
    returns what was removed."""
    folder = shards_dir(manifest)
    strays = [p for p in folder.iterdir() if p not in set(keep) and not live(p)] if folder.is_dir() else []
    for p in strays:
        p.unlink()
    return strays
