"""`sgpose cache` with shards: same contents as one shard, resume after a kill, damaged shards rebuilt."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sgpose.cache.plan as plan
import sgpose.stages.cache as stage
from sgpose.cache.format import read_attrs
from sgpose.cache.reader import load_cache, open_cache
from sgpose.cache.shards import shard_path
from sgpose.cli import main as cli
from sgpose.config.paths import Paths
from sgpose.config.selection import load_params
from test_cache_stage import tiny_project

SHARDED = ["--set", "cache.shards={train: 3}", "--set", "cache.batch_size=2"]  # train: 7 samples -> 2 + 2 + 3


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    assert cli(["train_backbone", "--params", str(params_file)]) == 0
    return params_file, Path("results/fx/tiny/cache")  # as the stage names it (cwd: tmp_path)


def _snapshot(cache) -> dict:
    out = {}
    for split in ("train", "val"):
        out |= {f"{split}:{k}": v for k, v in load_cache(cache / f"{split}.h5").items()}
        with open_cache(cache / f"{split}.h5") as h5:
            out[f"{split}:attrs"] = read_attrs(h5)
    return out


def _bytes(cache: Path) -> dict[str, bytes]:
    """Every file of the cache (manifests and shards) by name: what DVC hashes."""
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*.h5"))}


def _assert_same(a: dict, b: dict, skip_attrs=()) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key.endswith(":attrs"):
            assert {k: v for k, v in a[key].items() if k not in skip_attrs} == \
                   {k: v for k, v in b[key].items() if k not in skip_attrs}
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_shards_read_back_as_the_single_shard_cache(project):
    params_file, cache = project
    one = ["--set", "cache.batch_size=1"]  # CPU convolutions round differently per batch size (fp16 ulps)
    assert cli(["cache", "--params", str(params_file), *one]) == 0
    single = _snapshot(cache)
    assert sorted(p.name for p in (cache / "train.shards").iterdir()) == ["shard-00000.h5"]
    assert cli(["cache", "--params", str(params_file), *SHARDED, *one]) == 0
    sharded = _snapshot(cache)
    assert sorted(p.name for p in (cache / "train.shards").iterdir()) == [f"shard-0000{i}.h5" for i in range(3)]
    assert sharded["train:attrs"]["shard_starts"] == [0, 2, 4] and sharded["train:heatmaps"].shape[0] == 7
    assert sharded["train:attrs"]["cache"]["compression"] == "lz4" and "shards" not in sharded["train:attrs"]["cache"]
    # identical data and attributes: sharding changes the layout on disk, not a value
    _assert_same(single, sharded, skip_attrs=("shard_files", "shard_fingerprints", "shard_starts"))


def test_killed_run_resumes_at_the_first_unfinished_shard(project, monkeypatch):
    params_file, cache = project
    assert cli(["cache", "--params", str(params_file), *SHARDED]) == 0
    want, want_bytes = _snapshot(cache), _bytes(cache)
    for p in cache.rglob("*.h5"):
        p.unlink()
    real, written = stage.write_shard, []

    def dies_after_one(path, *args):
        if written:
            raise KeyboardInterrupt("killed")  # like Ctrl-C / SIGINT mid-run
        real(path, *args)
        written.append(path)

    monkeypatch.setattr(stage, "write_shard", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        cli(["cache", "--params", str(params_file), *SHARDED])
    first = shard_path(cache / "train.h5", 0)
    assert written == [first] and sorted(p.name for p in (cache / "train.shards").iterdir()) == [first.name]
    assert not (cache / "train.h5").exists()
    mtime = first.stat().st_mtime_ns
    resumed = []
    monkeypatch.setattr(stage, "write_shard", lambda path, *a: (resumed.append(path), real(path, *a)))
    assert cli(["cache", "--params", str(params_file), *SHARDED, "--threads", "1"]) == 0
    assert first not in resumed and first.stat().st_mtime_ns == mtime  # kept, not rewritten
    assert resumed[:2] == [shard_path(cache / "train.h5", 1), shard_path(cache / "train.h5", 2)]
    _assert_same(want, _snapshot(cache))
    assert _bytes(cache) == want_bytes  # resumed, on one thread: every shard and manifest to the byte


@pytest.mark.parametrize("damage", ["truncate", "garbage", "incomplete"])
def test_damaged_shard_is_detected_and_rebuilt(project, damage):
    params_file, cache = project
    assert cli(["cache", "--params", str(params_file), *SHARDED]) == 0
    want = _snapshot(cache)
    shard = shard_path(cache / "train.h5", 1)
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif damage == "garbage":
        shard.write_bytes(b"\0" * 1000)
    else:
        import h5py
        with h5py.File(shard, "a") as h5:
            h5.attrs["complete"] = False
    with pytest.raises((ValueError, OSError)):
        load_cache(cache / "train.h5")  # never read as data
    assert cli(["cache", "--params", str(params_file), *SHARDED]) == 0
    _assert_same(want, _snapshot(cache))


def test_a_rerun_keeps_the_manifests_byte_for_byte(project):
    """A re-run that keeps every shard (here: only a val-side parameter changed) leaves the train
    manifest's bytes alone: HDF5 stamps times into a rewritten file, and DVC would see a new hash."""
    params_file, cache = project
    assert cli(["cache", "--params", str(params_file), *SHARDED]) == 0
    before = {p: p.read_bytes() for p in cache.glob("*.h5")}
    assert cli(["cache", "--params", str(params_file), *SHARDED, "--set", "cache.shards={train: 3, val: 2}"]) == 0
    assert (cache / "train.h5").read_bytes() == before[cache / "train.h5"]
    assert (cache / "val.h5").read_bytes() != before[cache / "val.h5"]  # re-sharded: a new manifest
    assert len(read_attrs(open_cache(cache / "val.h5"))["shard_files"]) == 2


def test_other_weights_rebuild_every_shard(project):
    params_file, cache = project
    assert cli(["cache", "--params", str(params_file), *SHARDED]) == 0
    before = load_cache(cache / "train.h5", ["heatmaps"])["heatmaps"]
    prints = read_attrs(open_cache(cache / "train.h5"))["shard_fingerprints"]
    assert cli(["train_backbone", "--params", str(params_file), "--set", "train_backbone.seed=5",
                "--set", "train_backbone.epochs=1"]) == 0
    assert cli(["cache", "--params", str(params_file), *SHARDED]) == 0
    with open_cache(cache / "train.h5") as h5:
        assert not set(read_attrs(h5)["shard_fingerprints"]) & set(prints)
        assert not np.array_equal(h5["heatmaps"][()], before)


def test_scatter_and_gather_jobs(project):
    params_file, cache = project
    assert cli(["cache", "--params", str(params_file), *SHARDED]) == 0
    want, want_bytes = _snapshot(cache), _bytes(cache)
    for p in cache.rglob("*.h5"):
        p.unlink()
    base = ["cache", "--params", str(params_file), *SHARDED, "--split", "train"]
    assert cli([*base, "--shard", "2"]) == 0 and cli([*base, "--shard", "0"]) == 0
    assert not (cache / "train.h5").exists()
    assert cli([*base, "--gather"]) == 1  # shard 1 is missing: an error naming it
    assert cli([*base, "--shard", "1"]) == 0 and cli([*base, "--gather"]) == 0
    assert cli([*base, "--shard", "3"]) == 1  # out of range
    assert cli(["cache", "--params", str(params_file), *SHARDED, "--split", "val"]) == 0
    _assert_same(want, _snapshot(cache))
    assert _bytes(cache) == want_bytes  # scattered jobs, gathered: the bytes of one run


def test_more_shards_than_instances_leaves_empty_shards_and_the_same_data(project):
    params_file, cache = project
    one = ["--set", "cache.batch_size=1"]
    assert cli(["cache", "--params", str(params_file), *one]) == 0
    want = _snapshot(cache)
    assert cli(["cache", "--params", str(params_file), *one, "--set", "cache.shards={val: 8}"]) == 0
    assert len(list((cache / "val.shards").iterdir())) == 8  # 5 instances: three shards are empty
    _assert_same(want, _snapshot(cache), skip_attrs=("shard_files", "shard_fingerprints", "shard_starts"))


def test_training_views_interleave_the_plain_crop_and_augmented_draws(project):
    params_file, cache = project
    one = ["--set", "cache.batch_size=1"]
    assert cli(["cache", "--params", str(params_file), *one]) == 0
    plain = load_cache(cache / "train.h5")
    views = [*one, "--set", "cache.train_views=3", "--set", "cache.shards={train: 2}"]
    assert cli(["cache", "--params", str(params_file), *views]) == 0
    three = load_cache(cache / "train.h5")
    assert three["heatmaps"].shape[0] == 21 and three["meta/view"].tolist() == [0, 1, 2] * 7
    # each view's draw is recorded: the plain view unrotated, unflipped; a flipped view's center mirrored
    rotation, flipped = three["meta/rotation"], three["meta/flipped"]
    assert not rotation[::3].any() and not flipped[::3].any() and rotation[1::3].any() and flipped.any()
    width = pd.read_parquet(Path("results/fx/prepared/instances_train.parquet")).width.to_numpy()
    x0 = np.repeat(plain["meta/center"][:, 0], 3)
    np.testing.assert_allclose(three["meta/center"][:, 0], np.where(flipped == 1, np.repeat(width, 3) - 1 - x0, x0), rtol=1e-6)
    for key in ("heatmaps", "feat/0", "target", "joints", "meta/ann_id"):  # view 0 is the plain crop
        np.testing.assert_array_equal(three[key][::3], plain[key], err_msg=key)
    np.testing.assert_array_equal(three["meta/ann_id"][1::3], plain["meta/ann_id"])
    assert not np.array_equal(three["joints"][1::3], plain["joints"])  # views 1, 2: other crops
    assert not np.array_equal(three["joints"][1::3], three["joints"][2::3])
    with open_cache(cache / "train.h5") as h5:
        assert read_attrs(h5)["views"] == 3
    assert cli(["cache", "--params", str(params_file), *views, "--set", "cache.shards={train: 3}"]) == 0
    np.testing.assert_array_equal(load_cache(cache / "train.h5")["joints"], three["joints"])  # seeded draws


def test_feature_levels_store_a_subset_the_refiner_trains_on(project):
    params_file, cache = project
    one = ["--set", "cache.batch_size=1"]
    assert cli(["cache", "--params", str(params_file), *one]) == 0
    full = load_cache(cache / "val.h5")
    some = [*one, "--set", "cache.feature_levels=[1,2]"]
    assert cli(["cache", "--params", str(params_file), *some]) == 0
    part = load_cache(cache / "val.h5")
    assert "feat/2" not in part and "flip/feat/2" not in part
    for i, level in enumerate([1, 2]):
        np.testing.assert_array_equal(part[f"feat/{i}"], full[f"feat/{level}"])
        np.testing.assert_array_equal(part[f"flip/feat/{i}"], full[f"flip/feat/{level}"])
    small = ["--set", "refiner.base_channels=8", "--set", "refiner.time_dim=16", "--set", "train_refiner.epochs=1"]
    assert cli(["start_pose", "--params", str(params_file)]) == 0
    assert cli(["train_refiner", "--params", str(params_file), *small]) == 0
    assert cli(["infer", "--params", str(params_file), "--variant", "ours", *small]) == 0
    assert cli(["cache", "--params", str(params_file), *one, "--set", "cache.feature_levels=[3]"]) == 1  # no level 3


@pytest.mark.parametrize("key, value, rebuilt", [
    ("cache.train_views", 2, {"train"}), ("cache.augment.flip_prob", 0.0, set()),  # augment: only with views > 1
    ("cache.flip_test", False, {"val"}), ("cache.feature_levels", [0, 2], {"train", "val"}),
    ("cache.dtype", "float32", {"train", "val"}), ("cache.compression", "gzip", {"train", "val"}),
    ("cache.batch_size", 3, set()), ("cache.shards", {"val": 2}, set()),
])
def test_a_split_fingerprints_only_the_keys_that_shape_its_shards(project, key, value, rebuilt):
    """The attributes each shard's fingerprint hashes change exactly for the splits the key shapes."""
    params_file, _ = project
    base = load_params(params_file)
    changed = load_params(params_file, [f"{key}={value}"])
    differs = {split for split in ("train", "val") if plan.shard_attrs(base, Paths(base), split)
               != plan.shard_attrs(changed, Paths(changed), split)}
    assert differs == rebuilt
    views = load_params(params_file, ["cache.train_views=2"])  # with views drawn, augment shapes train
    assert plan.shard_attrs(views, Paths(views), "train") != \
        plan.shard_attrs(load_params(params_file, ["cache.train_views=2", "cache.augment.flip_prob=0"]),
                          Paths(views), "train")


def test_a_train_views_change_keeps_the_val_shards_and_rebuilds_train(project):
    params_file, cache = project
    assert cli(["cache", "--params", str(params_file)]) == 0
    val = {p: p.read_bytes() for p in [cache / "val.h5", *sorted((cache / "val.shards").iterdir())]}
    train = read_attrs(open_cache(cache / "train.h5"))["shard_fingerprints"]
    assert cli(["cache", "--params", str(params_file), "--set", "cache.train_views=2"]) == 0
    assert {p: p.read_bytes() for p in val} == val  # neither the val shard nor its manifest rewritten
    with open_cache(cache / "train.h5") as h5:
        assert not set(read_attrs(h5)["shard_fingerprints"]) & set(train)
        assert read_attrs(h5)["views"] == 2 and len(h5["heatmaps"]) == 2 * 7  # 7 training instances
