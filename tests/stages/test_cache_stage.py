"""`sgpose cache` on a tiny config over the COCO fixture: contents, attributes, official checkpoints."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from conftest import FIXTURE_COCO as FIXTURE
from conftest import fixture_instances
from sgpose.cache import cache_attrs, load_cache, open_cache
from sgpose.cli import main as cli
from sgpose.config import load_params
from sgpose.data.dataset import CropDataset
from sgpose.keypoints import COCO
from sgpose.models.simple_baseline import build_backbone, load_backbone

INPUT, HEATMAP = (64, 64), (16, 16)


def tiny_project(root: Path) -> tuple[Path, pd.DataFrame]:
    params = {
        "dataset": "fx", "layout": "coco",
        "data": {"manifest": "m.tsv", "raw_dir": "raw", "images_dir": str(FIXTURE),
                 "annotations": str(FIXTURE / "test_coco.json")},
        "backbone": {"name": "tiny", "depth": 18, "deconv_channels": 16, "input_size": list(INPUT),
                     "heatmap_size": list(HEATMAP)},
        "train_backbone": {"epochs": 0},
        "cache": {"batch_size": 4},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    table = fixture_instances(INPUT)
    out = root / "results" / "fx"
    out.mkdir(parents=True)
    table.iloc[:7].to_parquet(out / "instances_train.parquet")
    table.iloc[7:].to_parquet(out / "instances_val.parquet")
    return root / "params.yaml", table


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
            attrs = cache_attrs(h5)
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
    assert cli(["cache", "--params", str(params_file), "--set", f"backbone.checkpoint={official}"]) == 0
    with open_cache(tmp_path / "results" / "fx" / "tiny" / "cache" / "val.h5") as h5:
        assert h5.attrs["checkpoint_sha256"] == hashlib.sha256(official.read_bytes()).hexdigest()


def test_missing_backbone_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    assert cli(["cache", "--params", str(params_file)]) == 1
    assert "backbone.pt" in capsys.readouterr().err
    assert not (tmp_path / "results" / "fx" / "tiny" / "cache").exists()
