"""HDF5 cache: round trip, dtypes, chunking, completeness mark, atomic writes."""

import h5py
import numpy as np
import pytest
from cache_samples import ATTRS, K, N, arrays
from sgpose.cache.format import read_attrs
from sgpose.cache.reader import load_cache, open_cache
from sgpose.cache.writer import cache_writer, stored, write_cache


def test_round_trip(tmp_path):
    path = tmp_path / "c" / "val.h5"
    data = arrays()
    write_cache(path, data, ATTRS)
    back = load_cache(path)
    assert list(back) == ["feat/0", "feat/1", "feat/2", "heatmaps", "joints", "meta/ann_id", "meta/bbox",
                          "meta/center", "meta/image_id", "meta/scale", "meta/score", "target", "target_weight"]
    for key, value in data.items():
        tol = 1e-3 if back[key].dtype == np.float16 else 1e-6
        np.testing.assert_allclose(back[key], value, rtol=tol, atol=tol)
    assert back["heatmaps"].dtype == np.float16 and back["feat/1"].dtype == np.float16
    assert back["target_weight"].dtype == np.float32 and back["meta/ann_id"].dtype == np.int64
    with open_cache(path) as h5:
        assert h5["feat/0"].chunks == (1, 8, 16, 12)
        attrs = read_attrs(h5)
    assert attrs["complete"] is True and attrs["backbone"] == {"name": "t", "depth": 18}
    assert attrs["input_size"] == [64, 48] and attrs["num_joints"] == K and attrs["layout"] == "coco"
    assert list(load_cache(path, ["meta/score"])) == ["meta/score"]


def test_batches_and_float32(tmp_path):
    path = tmp_path / "train.h5"
    data = arrays()
    with cache_writer(path, N, ATTRS, dtype="float32") as w:
        w.append({k: v[:2] for k, v in data.items()})
        w.append({k: v[2:] for k, v in data.items()})
    back = load_cache(path, ["heatmaps"])
    assert back["heatmaps"].dtype == np.float32
    np.testing.assert_allclose(back["heatmaps"], data["heatmaps"], rtol=1e-6)


def test_values_beyond_float16_are_named_once(tmp_path, caplog):
    """An untrained backbone's activations can exceed fp16: stored as inf, with one warning per dataset."""
    data = arrays()
    data["feat/2"][1, 0, 0, 0] = 7e4
    data["feat/2"][3, 0, 0, 0] = -9e4
    with cache_writer(tmp_path / "val.h5", N, ATTRS) as w:  # the overflow in both batches
        w.append({k: v[:2] for k, v in data.items()})
        w.append({k: v[2:] for k, v in data.items()})
    back = load_cache(tmp_path / "val.h5", ["feat/2"])["feat/2"]
    assert back[1, 0, 0, 0] == np.inf and back[3, 0, 0, 0] == -np.inf
    assert caplog.text.count("feat/2 has values beyond the float16 range") == 1 and "feat/1" not in caplog.text
    write_cache(tmp_path / "f32.h5", data, ATTRS, dtype="float32")
    assert load_cache(tmp_path / "f32.h5", ["feat/2"])["feat/2"][1, 0, 0, 0] == 7e4


def test_incomplete_and_foreign_files_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        open_cache(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ValueError, match="text.h5.*not an HDF5"):
        open_cache(tmp_path / "text.h5")
    with h5py.File(tmp_path / "half.h5", "w") as h5:
        h5["heatmaps"] = np.zeros((1, 2, 3, 4))
    with pytest.raises(ValueError, match="half.h5.*incomplete"):
        load_cache(tmp_path / "half.h5")


def test_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "val.h5"
    data = arrays()
    with pytest.raises(RuntimeError):
        with cache_writer(path, N, ATTRS) as w:
            w.append({k: v[:2] for k, v in data.items()})
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    # too few samples is an error at finish, also leaving nothing
    with pytest.raises(ValueError, match="2 samples, expected 5"):
        with cache_writer(path, N, ATTRS) as w:
            w.append({k: v[:2] for k, v in data.items()})
    assert list(tmp_path.iterdir()) == []


def test_stored_converts_as_numpy_does_and_reports_finite_overflow_only():
    x = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32) * 100
    values, overflow = stored(x, np.dtype(np.float16))
    assert values.dtype == np.float16 and not overflow
    np.testing.assert_array_equal(values.view(np.uint16), x.astype(np.float16).view(np.uint16))  # same bits
    assert stored(np.array([65519.0], np.float32), np.float16) == (np.array([65504.0], np.float16), False)
    big, overflow = stored(np.array([1.0, -65520.0], np.float32), np.float16)
    assert overflow and big[1] == -np.inf
    assert not stored(np.array([7e4, np.inf], np.float32), np.float16)[1]  # the input itself is not finite
    assert not stored(np.array([7e4, np.nan], np.float32), np.float16)[1]
    ints, _ = stored(np.arange(3), np.dtype(np.int64))
    assert ints.dtype == np.int64


@pytest.mark.parametrize("background", [False, True])
def test_background_appends_write_the_same_file_and_raise_the_threads_error(tmp_path, background):
    data = arrays()
    with cache_writer(tmp_path / "a.h5", N, ATTRS, background=background) as w:
        for i in range(N):
            w.append({k: v[i:i + 1] for k, v in data.items()})
    back = load_cache(tmp_path / "a.h5")
    for key, value in load_cache(write_cache(tmp_path / "b.h5", data, ATTRS) or tmp_path / "b.h5").items():
        np.testing.assert_array_equal(back[key], value)
    with pytest.raises(ValueError, match="cache overflow: 6 samples for 5"):  # raised on the writer thread
        with cache_writer(tmp_path / "c.h5", N, ATTRS, background=background) as w:
            for _ in range(3):
                w.append({k: v[:2] for k, v in data.items()})
    assert not list(tmp_path.glob("c.h5*")) and not list(tmp_path.glob(".c.h5*"))
