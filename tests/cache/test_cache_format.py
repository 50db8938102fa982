"""HDF5 cache: round trip, dtypes, chunking, completeness mark, atomic writes, no non-finite number."""

import h5py
import numpy as np
import pytest
from cache_samples import ATTRS, K, N, arrays
from sgpose.cache.format import read_attrs
from sgpose.cache.reader import load_cache, open_cache
from sgpose.cache.writer import cache_writer, stored, write_cache
from sgpose.core.errors import NonFiniteError


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


@pytest.mark.parametrize("value, says", [
    (7e4, r"feat/2 of samples 2-4 holds values beyond the float16 range \(\|x\| up to 7e\+04 > 65504\), which it would "
          r"store as infinity; set cache\.dtype: float32"),
    (np.nan, r"feat/2 of samples 2-4 holds non-finite values \(NaN or inf\): the backbone's outputs are broken"),
    (-np.inf, r"feat/2 of samples 2-4 holds non-finite values"),
])
def test_a_batch_with_non_finite_values_is_refused_and_nothing_cached(tmp_path, value, says):
    """A backbone's NaN or inf, or an activation float16 would store as inf (an untrained backbone's can be
    that large), never reaches the cache: a refiner trained on it diverges."""
    data = arrays()
    data["feat/2"][3, 0, 0, 0] = value
    with pytest.raises(NonFiniteError, match=rf"{tmp_path}/val\.h5: {says}"):
        with cache_writer(tmp_path / "val.h5", N, ATTRS) as w:
            w.append({k: v[:2] for k, v in data.items()})
            w.append({k: v[2:] for k, v in data.items()})
    assert list(tmp_path.iterdir()) == []
    if np.isfinite(value):  # float32 holds it
        write_cache(tmp_path / "f32.h5", data, ATTRS, dtype="float32")
        assert load_cache(tmp_path / "f32.h5", ["feat/2"])["feat/2"][3, 0, 0, 0] == value


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
