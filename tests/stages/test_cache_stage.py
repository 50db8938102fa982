"""`sgpose cache` on a tiny config over the COCO fixture: contents, attributes, official checkpoints."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from conftest import FIXTURE_COCO as FIXTURE
from conftest import fixture_instances, params_tree, write_instances, write_params
from sgpose.cache.format import has_flip, num_features, read_attrs
from sgpose.cache.reader import load_cache, open_cache
from sgpose.cli import main as cli
from sgpose.config.selection import load_params
from sgpose.core.keypoints import COCO
from sgpose.data.dataset import CropDataset
from sgpose.data.decoding import flip_back
from sgpose.models.backbones import build_backbone
from sgpose.models.checkpoints import load_backbone

INPUT, HEATMAP = (64, 64), (16, 16)


def tiny_project(root: Path) -> tuple[Path, pd.DataFrame]:
    params = write_params(root, params_tree(backbone_params={"input_size": list(INPUT), "heatmap_size": list(HEATMAP)},
                                            train_backbone={"epochs": 0}, cache={"batch_size": 4}))
    table = fixture_instances(INPUT)
    write_instances(root, "fx", train=table.iloc[:7], val=table.iloc[7:])
    return params, table


def test_cache_stage_writes_both_splits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params_file, table = tiny_project(tmp_path)
    assert cli(["train_backbone", "--params", str(params_file)]) == 0
    assert cli(["cache", "--params", str(params_file)]) == 0
    bb = tmp_path / "results" / "fx" / "tiny"
    sha = hashlib.sha256((bb / "backbone.pt").read_bytes()).hexdigest()
    for split, rows in (("train", table.iloc[:7]), ("val", table.iloc[7:])):
        data = load_cache(bb / "cache" / f"{split}.h5")
        n = len(rows)
        assert data["heatmaps"].shape == (n, 17, 16, 16) and data["heatmaps"].dtype == np.float16
        assert [data[f"feat/{i}"].shape for i in range(3)] == [(n, 16, 16, 16), (n, 16, 8, 8), (n, 16, 4, 4)]
        assert data["target"].shape == (n, 17, 16, 16) and data["joints"].shape == (n, 17, 3)
        assert data["meta/ann_id"].tolist() == rows.ann_id.tolist()
        np.testing.assert_allclose(data["meta/center"], rows[["center_x", "center_y"]].to_numpy(), rtol=1e-6)
        with open_cache(bb / "cache" / f"{split}.h5") as h5:
            attrs = read_attrs(h5)
        assert attrs["checkpoint_sha256"] == sha and attrs["complete"] is True
        assert attrs["layout"] == "coco" and attrs["input_size"] == [64, 64] and attrs["num_joints"] == 17
        assert attrs["backbone"]["depth"] == 18
    # Y0 is the frozen backbone's output on the val crops
    params = load_params(params_file)
    model = load_backbone(bb / "backbone.pt", params.backbone, 17)
    ds = CropDataset(table.iloc[7:], FIXTURE, INPUT, HEATMAP, params.backbone.heatmap_sigma, COCO)
    with torch.no_grad():
        y0, feats = model(ds[0]["image"][None])
    val = load_cache(bb / "cache" / "val.h5", ["heatmaps", "feat/0", "target"])
    np.testing.assert_allclose(val["heatmaps"][0], y0[0].numpy(), atol=1e-3, rtol=1e-2)
    np.testing.assert_allclose(val["feat/0"][0], feats[0][0].numpy(), atol=1e-2, rtol=1e-2)
    np.testing.assert_allclose(val["target"][0], ds[0]["target"].numpy(), atol=1e-3)


def test_cache_from_official_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    params = load_params(params_file)
    official = tmp_path / "pose_resnet_18.pth"  # a bare state_dict with DataParallel prefixes
    torch.save({"module." + k: v for k, v in build_backbone(params.backbone, 17).state_dict().items()}, official)
    imported = ["--params", str(params_file), "--set", f"backbone.checkpoint={official}"]
    assert cli(["train_backbone", *imported]) == 0  # imports, trains nothing
    assert cli(["cache", *imported]) == 0
    with open_cache(tmp_path / "results" / "fx" / "tiny" / "cache" / "val.h5") as h5:
        assert h5.attrs["checkpoint_sha256"] == hashlib.sha256(official.read_bytes()).hexdigest()


def test_missing_backbone_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    assert cli(["cache", "--params", str(params_file)]) == 1
    assert "backbone.pt" in capsys.readouterr().err
    assert not (tmp_path / "results" / "fx" / "tiny" / "cache").exists()


def test_flip_test_outputs_are_the_mirrored_crops(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params_file, table = tiny_project(tmp_path)
    assert cli(["train_backbone", "--params", str(params_file)]) == 0
    assert cli(["cache", "--params", str(params_file)]) == 0
    bb = tmp_path / "results" / "fx" / "tiny"
    with open_cache(bb / "cache" / "train.h5") as h5:
        assert not has_flip(h5) and read_attrs(h5)["flip_test"] is False  # train split: no flip datasets
    with open_cache(bb / "cache" / "val.h5") as h5:
        assert has_flip(h5) and read_attrs(h5)["flip_test"] is True and num_features(h5, "flip/feat") == 3
    val = load_cache(bb / "cache" / "val.h5")
    n = len(table) - 7
    assert val["flip/heatmaps"].shape == val["heatmaps"].shape == (n, 17, 16, 16)
    assert [val[f"flip/feat/{i}"].shape for i in range(3)] == [val[f"feat/{i}"].shape for i in range(3)]
    # raw outputs of the backbone on the horizontally mirrored crop
    params = load_params(params_file)
    model = load_backbone(bb / "backbone.pt", params.backbone, 17)
    ds = CropDataset(table.iloc[7:], FIXTURE, INPUT, HEATMAP, params.backbone.heatmap_sigma, COCO)
    image = ds[1]["image"][None]
    with torch.no_grad():
        y_flip, f_flip = model(image.flip(-1))
        _, f = model(image)
    np.testing.assert_allclose(val["flip/heatmaps"][1], y_flip[0].numpy(), atol=1e-3, rtol=1e-2)
    for i in range(3):  # the stored features are the mirrored image's, not the original's (an untrained
        # network is not mirror-equivariant, so the two views differ far beyond fp16 rounding)
        stored = val[f"flip/feat/{i}"][1].astype(np.float32)
        assert np.abs(stored - f_flip[i][0].numpy()).max() < 0.02 * (f[i][0] - f_flip[i][0]).abs().max().item()
    back = flip_back(torch.from_numpy(val["flip/heatmaps"].astype(np.float32)), COCO.flip_permutation())
    assert back.shape == (n, 17, 16, 16)


def test_flip_test_off_writes_no_flip_datasets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    assert cli(["train_backbone", "--params", str(params_file)]) == 0
    assert cli(["cache", "--params", str(params_file), "--set", "cache.flip_test=false"]) == 0
    with open_cache(tmp_path / "results" / "fx" / "tiny" / "cache" / "val.h5") as h5:
        assert not has_flip(h5) and "flip" not in h5


def test_cache_from_registry_hrnet_checkpoint(tmp_path, monkeypatch):
    """`backbone.checkpoint: mmpose:hrnet_w32_coco_256x192` loads checkpoints/<file> (mmpose 0.x naming)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SGPOSE_MIRROR", "http://127.0.0.1:9")  # a mirror that refuses: no checkpoint to fetch
    params_file, table = tiny_project(tmp_path)
    write_instances(tmp_path, "fx", train=table.iloc[:1], val=table.iloc[1:3])
    hr = ["--set", "prepare.aspect_ratio=0.75", "--set", "backbone.arch=hrnet", "--set", "backbone.width=32",
          "--set", "backbone.input_size=[256,192]",
          "--set", "backbone.heatmap_size=[64,48]", "--set", "backbone.checkpoint=mmpose:hrnet_w32_coco_256x192",
          "--set", "cache.batch_size=1", "--set", "cache.dtype=float32"]  # random HRNet weights: beyond float16
    assert cli(["train_backbone", "--params", str(params_file), *hr]) == 1  # not downloaded, and the mirror has none
    params = load_params(params_file, [a for a in hr if a != "--set"])
    model = build_backbone(params.backbone, 17)
    mm = {("keypoint_head." if k.startswith("final_layer") else "backbone.") + k: v for k, v in model.state_dict().items()}
    path = tmp_path / "checkpoints" / "hrnet_w32_coco_256x192-c78dce93_20200708.pth"
    path.parent.mkdir(exist_ok=True)
    torch.save({"meta": {}, "state_dict": mm}, path)
    assert cli(["train_backbone", "--params", str(params_file), *hr]) == 0
    assert cli(["cache", "--params", str(params_file), *hr]) == 0
    val = load_cache(tmp_path / "results" / "fx" / "tiny" / "cache" / "val.h5")
    assert val["heatmaps"].shape == (2, 17, 64, 48)
    assert [val[f"flip/feat/{i}"].shape[1:] for i in range(4)] == [(32, 64, 48), (64, 32, 24), (128, 16, 12), (256, 8, 6)]
    with open_cache(tmp_path / "results" / "fx" / "tiny" / "cache" / "val.h5") as h5:
        assert h5.attrs["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
