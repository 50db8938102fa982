"""Damaged cache files on a real tiny cache: a flipped chunk, a truncated shard, a damaged object
header. Each is an error naming the shard for every reader (never other numbers), and the cache stage
rebuilds it; nothing is left under a temporary name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from sgpose.cache.reader import load_cache
from sgpose.cache.shards import shard_path
from sgpose.cli import main as cli
from test_cache_stage import tiny_project

CACHE = Path("results/fx/tiny/cache")
VAL_SHARD = shard_path(CACHE / "val.h5", 0)


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """A tiny project with its backbone and a finished cache (cwd: the project)."""
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    args = ["--params", str(params_file)]
    assert cli(["train_backbone", *args]) == 0
    assert cli(["cache", *args]) == 0
    return args


def flip_chunk(path: Path, key: str = "heatmaps", index: int = 1, nbytes: int = 8) -> None:
    """Invert `nbytes` bytes in the middle of the stored chunk of sample `index` of dataset `key`."""
    with h5py.File(path, "r") as h5:
        info = h5[key].id.get_chunk_info(index)
    with path.open("r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        data = fh.read(nbytes)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes(b ^ 0xFF for b in data))


def leftovers(root: Path) -> list[Path]:
    """Files under a temporary name (`*.tmp-<pid>`) anywhere below `root`."""
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


def test_every_dataset_carries_a_checksum(cached):
    with h5py.File(VAL_SHARD, "r") as h5:
        datasets = []
        h5.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        assert datasets and all(ds.fletcher32 for ds in datasets)
        assert h5["heatmaps"].compression is not None  # composes with the lz4 filter (cache.compression)


def test_flipped_bytes_in_a_val_shard_are_never_read_and_the_shard_is_rebuilt(cached, capsys, caplog):
    want = load_cache(CACHE / "val.h5")
    flip_chunk(VAL_SHARD)
    # infer (baseline: the cached heatmaps decoded) refuses the shard instead of reading other numbers
    assert cli(["infer", *cached, "--variant", "baseline"]) == 2
    err = capsys.readouterr().err
    assert f"{VAL_SHARD}: damaged cache shard" in err and "filter returned failure" in err
    assert not Path("results/fx/tiny/baseline/predictions/val.json").exists()
    with caplog.at_level(logging.WARNING, logger="sgpose.stages.cache"):
        assert cli(["cache", *cached]) == 0
    assert f"{VAL_SHARD}: damaged: heatmaps rows 0:5 fail their checksum" in caplog.text
    assert "rebuilding it" in caplog.text
    got = load_cache(CACHE / "val.h5")
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert leftovers(CACHE) == []
    assert cli(["infer", *cached, "--variant", "baseline"]) == 0


def test_a_truncated_shard_is_an_error_naming_it_and_is_rebuilt(cached, capsys):
    os.truncate(VAL_SHARD, VAL_SHARD.stat().st_size // 2)
    assert cli(["infer", *cached, "--variant", "baseline"]) == 2
    assert f"sgpose infer: error: {VAL_SHARD}: damaged shard of {CACHE / 'val.h5'}" in capsys.readouterr().err
    assert cli(["cache", *cached]) == 0
    assert len(load_cache(CACHE / "val.h5")["heatmaps"]) == 5 and leftovers(CACHE) == []


def test_a_damaged_object_header_is_an_error_naming_the_shard(cached, capsys):
    with h5py.File(VAL_SHARD, "r") as h5:
        header = h5py.h5o.get_info(h5["heatmaps"].id).addr
    with VAL_SHARD.open("r+b") as fh:
        fh.seek(header)
        fh.write(b"\xff" * 16)
    assert cli(["infer", *cached, "--variant", "baseline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sgpose infer: error: {VAL_SHARD}: damaged cache") and "Traceback" not in err
    assert cli(["cache", *cached]) == 0
    assert cli(["infer", *cached, "--variant", "baseline"]) == 0
