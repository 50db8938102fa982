"""`cache.store: trunk` (sgpose.cache.head): a SimpleBaseline's train split holds its trunk's C5 map, and
refiner training reruns the frozen deconv head on it. Against the head layout on the same crops: fewer
bytes, the same features to the rounding of the storage, the same refiner to that rounding; evaluation
splits and HRNet keep their features; a backbone.pt other than the cache's is an error naming it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from conftest import fixture_instances, params_tree, write_instances, write_params
from sgpose.cache.head import TrunkHead
from sgpose.cache.reader import CacheBatches, open_cache
from sgpose.cli import main as cli
from sgpose.config.paths import Paths
from sgpose.config.selection import load_params
from sgpose.stages.train_refiner import training_source

INPUT, HEATMAP = (64, 64), (16, 16)
SMALL = ["--set", "refiner.base_channels=8", "--set", "refiner.time_dim=16", "--set", "train_refiner.batch_size=4",
         "--set", "train_refiner.epochs=2", "--set", "train_refiner.preload_gb=0"]


def project(root: Path, store: str, **backbone) -> list[str]:
    """The COCO fixture's crops (7 train, 5 val) through a trained-looking R18 (1 epoch), cached with `store`."""
    bp = {"input_size": list(INPUT), "heatmap_size": list(HEATMAP), "deconv_channels": 16} | backbone
    params = write_params(root, params_tree(backbone_params=bp, train_backbone={"epochs": 1}, cache={"batch_size": 4,
                                                                                                    "store": store}))
    table = fixture_instances(INPUT)
    write_instances(root, "fx", train=table.iloc[:7], val=table.iloc[7:])
    args = ["--params", str(params)]
    assert cli(["train_backbone", *args]) == 0
    assert cli(["cache", *args]) == 0
    return args


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same project cached as head and as trunk (the same backbone.pt: train_backbone is seeded)."""
    roots = {}
    for store in ("head", "trunk"):
        root = tmp_path_factory.mktemp(store)
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(root)
            project(root, store)
        roots[store] = root
    return roots


def _cache(root: Path, split: str) -> Path:
    return root / "results" / "fx" / "tiny" / "cache" / f"{split}.h5"


def _shard(root: Path, split: str) -> Path:
    return root / "results" / "fx" / "tiny" / "cache" / f"{split}.shards" / "shard-00000.h5"


def test_the_train_split_holds_the_trunk_and_evaluation_splits_the_features(both):
    weights = [hashlib.sha256((r / "results/fx/tiny/backbone.pt").read_bytes()).hexdigest() for r in both.values()]
    assert weights[0] == weights[1]
    with open_cache(_shard(both["trunk"], "train")) as h5:
        assert h5.attrs["store"] == "trunk" and "feat" not in h5 and h5["trunk"].shape == (7, 512, 2, 2)
        assert h5["trunk"].dtype == "float16" and h5["trunk"].chunks == (1, 512, 2, 2)
        trunk_bytes = h5["trunk"].id.get_storage_size()
    with open_cache(_shard(both["head"], "train")) as h5:
        assert h5.attrs["store"] == "head" and "trunk" not in h5
        head_bytes = sum(h5[f"feat/{i}"].id.get_storage_size() for i in range(3))
    with open_cache(_cache(both["trunk"], "val")) as h5:
        assert "store" not in h5.attrs and "trunk" not in h5 and len(h5["feat"]) == 3 and "flip" in h5
    # R18 at 64x64: 512 x 2 x 2 against 16 x (16x16 + 8x8 + 4x4) channels: fewer bytes on disk
    assert trunk_bytes < head_bytes


def test_training_batches_from_the_trunk_are_the_heads_to_storage_rounding(both, monkeypatch):
    """CachedSource over each layout: the same keys and targets, the features within fp16's rounding of
    each other (the head's features rounded once, or the trunk rounded and the head rerun: measured
    3.1e-4 of the features' range; bound 2e-3), Y0 (the whole network's) equal."""
    batches = [[0, 2, 5], [1, 3, 4, 6]]
    read = {}
    for store, root in both.items():
        monkeypatch.chdir(root)
        params = load_params(root / "params.yaml")
        source = training_source(params, Paths(params), torch.device("cpu"))
        assert (source.head is not None) == (store == "trunk")
        assert [f.channels for f in source.features] == [16, 16, 16]
        read[store] = list(source.batches(batches, 0))
    for head, trunk in zip(read["head"], read["trunk"], strict=True):
        assert head.keys() == trunk.keys()
        for key in ("heatmaps", "target", "target_weight", "joints"):
            assert torch.equal(head[key], trunk[key]), key
        for i in range(3):
            a, b = head[f"feat/{i}"].float(), trunk[f"feat/{i}"]
            assert b.dtype == torch.float32 and a.shape == b.shape
            assert (a - b).abs().max() <= 2e-3 * a.abs().max(), i


def test_a_refiner_trained_on_the_trunk_predicts_as_one_trained_on_the_features(both, monkeypatch):
    """train_refiner (2 epochs) then infer on each layout (the val split is the same head cache in both):
    the predicted keypoints within 0.01 image pixels (measured 3e-7; the weights 1.2e-6 apart)."""
    import json

    out = {}
    for store, root in both.items():
        monkeypatch.chdir(root)
        args = ["--params", str(root / "params.yaml"), *SMALL]
        assert cli(["train_refiner", *args]) == 0 and cli(["infer", *args, "--variant", "ours"]) == 0
        out[store] = json.loads((root / "results/fx/tiny/ours/predictions/val.json").read_text())
    for a, b in zip(out["head"], out["trunk"], strict=True):
        assert a["image_id"] == b["image_id"]
        assert max(abs(x - y) for x, y in zip(a["keypoints"], b["keypoints"])) <= 0.01  # image px


def test_an_hrnet_keeps_its_features_and_other_weights_are_refused(tmp_path, monkeypatch, both):
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path, params_tree(backbone_params={"arch": "hrnet", "input_size": list(INPUT),
                                                                 "heatmap_size": list(HEATMAP)},
                                                cache={"store": "trunk"}))
    from sgpose.cache.plan import store

    assert store(load_params(params), "train") == "head"  # HRNet has no trunk/head split
    trunk = _cache(both["trunk"], "train")
    attrs = CacheBatches(trunk).attrs
    other = both["head"] / "other.pt"
    torch.save({"not": "the same"}, other)
    with pytest.raises(ValueError, match=f"{other}: not the backbone the train cache's trunk was computed with"):
        TrunkHead.load(other, load_params(both["trunk"] / "params.yaml").backbone, 17, attrs, None, torch.device("cpu"))
