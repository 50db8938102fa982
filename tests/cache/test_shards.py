"""Sharded cache: shard ranges, the virtual-dataset manifest reads back as one cache, shard checks."""

import os

import h5py
import numpy as np
import pandas as pd
import pytest
from cache_samples import ATTRS, arrays
from sgpose.cache.format import read_attrs
from sgpose.cache.reader import load_cache, open_cache
from sgpose.cache.shards import fingerprint, remove_strays, shard_path, shard_problem, shard_ranges, shards_dir, write_manifest
from sgpose.cache.writer import write_cache

N = 5


def test_shard_ranges():
    assert shard_ranges(10, 1) == [(0, 10)]
    assert shard_ranges(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_ranges(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert shard_ranges(2, 4) == [(0, 0), (0, 1), (1, 1), (1, 2)]  # more shards than items: some empty
    assert shard_ranges(0, 2) == [(0, 0), (0, 0)]
    for n, k in [(149813, 64), (7, 3), (5, 5)]:  # contiguous, complete, sizes differ by at most one
        ranges = shard_ranges(n, k)
        assert ranges[0][0] == 0 and ranges[-1][1] == n and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    with pytest.raises(ValueError, match="num_shards"):
        shard_ranges(10, 0)


def test_paths():
    assert shards_dir("r/cache/train.h5").as_posix() == "r/cache/train.shards"
    assert shard_path("r/cache/val.h5", 12).as_posix() == "r/cache/val.shards/shard-00012.h5"


def _sharded(tmp_path, data, ranges, compression="gzip"):
    manifest = tmp_path / "cache" / "train.h5"
    files = []
    for i, (a, b) in enumerate(ranges):
        files.append(shard_path(manifest, i))
        write_cache(files[-1], {k: v[a:b] for k, v in data.items()}, ATTRS | {"fingerprint": f"fp{i}"},
                    compression=compression)
    write_manifest(manifest, files, [a for a, _ in ranges], N)
    return manifest


@pytest.mark.parametrize("compression", ["none", "gzip", "lzf", "lz4", "blosc_lz4", "blosc_zstd"])
def test_manifest_reads_back_as_the_single_file(tmp_path, monkeypatch, compression):
    data = arrays()
    write_cache(tmp_path / "single.h5", data, ATTRS)
    manifest = _sharded(tmp_path, data, [(0, 2), (2, 4), (4, 5)], compression)
    single = load_cache(tmp_path / "single.h5")
    monkeypatch.chdir(tmp_path / "cache" / "train.shards")  # sources resolve beside the manifest, not the cwd
    sharded = load_cache(os.path.relpath(manifest))
    assert list(sharded) == list(single)
    for key in single:
        assert sharded[key].dtype == single[key].dtype
        np.testing.assert_array_equal(sharded[key], single[key])
    with open_cache(manifest) as h5, open_cache(tmp_path / "single.h5") as one:
        attrs, want = read_attrs(h5), read_attrs(one)
        assert h5["feat/1"][3:5].shape == (2, 8, 8, 6) and h5["heatmaps"].is_virtual
    assert {k: attrs[k] for k in want} == want  # the same attributes, plus the shard layout
    assert attrs["shard_files"] == [f"train.shards/shard-0000{i}.h5" for i in range(3)]
    assert attrs["shard_fingerprints"] == ["fp0", "fp1", "fp2"] and attrs["shard_starts"] == [0, 2, 4]


def test_missing_or_replaced_shard_is_never_read_as_zeros(tmp_path):
    data = arrays()
    manifest = _sharded(tmp_path, data, [(0, 3), (3, 5)])
    second = shard_path(manifest, 1)
    second.rename(tmp_path / "away.h5")
    with pytest.raises(ValueError, match="shard-00001.h5: a shard of .* is missing"):
        load_cache(manifest)
    write_cache(second, {k: v[3:] for k, v in data.items()}, ATTRS | {"fingerprint": "other"})
    with pytest.raises(ValueError, match="shard-00001.h5: a shard of .* is incomplete or not the one"):
        load_cache(manifest)


def test_shard_problem(tmp_path):
    data = arrays()
    path = tmp_path / "s.h5"
    assert shard_problem(path, N, "fp") == "missing"
    write_cache(path, data, ATTRS | {"fingerprint": "fp"})
    assert shard_problem(path, N, "fp") is None
    assert "stale" in shard_problem(path, N, "other")
    assert "expected 4" in shard_problem(path, 4, "fp")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    assert shard_problem(path, N, "fp") is not None
    path.write_text("not hdf5")
    assert "not an HDF5" in shard_problem(path, N, "fp")
    with h5py.File(path, "w") as h5:  # a writer killed before the `complete` mark
        h5.attrs["fingerprint"] = "fp"
    assert "incomplete" in shard_problem(path, N, "fp")


def test_fingerprint_depends_on_rows_attrs_start_and_code():
    rows = pd.DataFrame({"ann_id": [1, 2], "center_x": [1.0, 2.0], "keypoints": [np.zeros(51), np.ones(51)]})
    base = fingerprint(ATTRS, rows, 0, "c")
    assert base == fingerprint(dict(ATTRS), rows.copy(), 0, "c")
    moved = rows.assign(keypoints=[np.zeros(51), np.full(51, 2.0)])
    others = [fingerprint(ATTRS, moved, 0, "c"), fingerprint(ATTRS | {"checkpoint_sha256": "x"}, rows, 0, "c"),
              fingerprint(ATTRS, rows, 2, "c"), fingerprint(ATTRS, rows, 0, "d"),
              fingerprint(ATTRS, rows.assign(center_x=[1.0, 2.5]), 0, "c")]
    assert len({base, *others}) == 6


def test_remove_strays(tmp_path):
    manifest = tmp_path / "train.h5"
    keep = [shard_path(manifest, 0)]
    stray = [shard_path(manifest, 1), shards_dir(manifest) / "shard-00000.h5.tmp-123"]
    for p in keep + stray:
        p.parent.mkdir(exist_ok=True)
        p.write_text("x")
    assert sorted(remove_strays(manifest, keep)) == sorted(stray)
    assert list(shards_dir(manifest).iterdir()) == keep
