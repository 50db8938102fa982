"""`sgpose predict` on a real fixture image with an untrained tiny backbone and refiner of the right format."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from conftest import FIXTURE_COCO, params_tree, require, write_params
from sgpose.cli import main as cli
from sgpose.config.selection import load_params
from sgpose.method.refiner import build_unet
from sgpose.models.backbones import build_backbone
from sgpose.models.features import select, to_json
from sgpose.stages.predict import parse_boxes

IMAGE = FIXTURE_COCO / "000000040083.jpg"


def tiny_params(root: Path) -> Path:
    return write_params(root, params_tree(data={"manifest": "m.tsv", "raw_dir": "raw", "images_dir": "img",
                                                "annotations": "a.json"},
                                          refiner={"base_channels": 8, "time_dim": 16}))


def save_models(root: Path, backbone: bool = True, refiner: bool = True, levels: list[int] | None = None) -> None:
    """A backbone and an `ours` refiner built on the backbone's feature `levels` (None: all)."""
    params = load_params(root / "params.yaml")
    bb_dir = root / "results" / "fx" / "tiny"
    (bb_dir / "ours").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_backbone(params.backbone, 17)
    if backbone:
        torch.save({"state_dict": model.state_dict(), "backbone": params.backbone.model_dump(mode="json"),
                    "num_joints": 17, "epochs": 0}, bb_dir / "backbone.pt")
    if refiner:
        _, feats = model(torch.zeros(1, 3, 64, 64))
        info = select(model.feature_info, levels)
        unet = build_unet(params.refiner, 17, info, "ours")
        torch.save({"state_dict": unet.state_dict(), "features": to_json(info), "variant": "ours"},
                   bb_dir / "ours" / "refiner.pt")


@pytest.fixture
def project(tmp_path, monkeypatch):
    require(IMAGE)
    monkeypatch.chdir(tmp_path)
    tiny_params(tmp_path)
    return tmp_path


def test_predict_boxes(project):
    save_models(project)
    assert cli(["predict", str(IMAGE), "--boxes", "10,20,200,300", "300,50,150,250", "--out", "pred"]) == 0
    results = json.loads((project / "pred" / "000000040083_keypoints.json").read_text())
    assert len(results) == 2 and {r["image_id"] for r in results} == {40083}
    kp = np.array([r["keypoints"] for r in results]).reshape(2, 17, 3)
    # every joint lies inside its (1.25-padded, aspect-corrected) box
    for (x, y, w, h), joints in zip([(10, 20, 200, 300), (300, 50, 150, 250)], kp):
        cx, cy, half = x + w / 2, y + h / 2, 0.5 * 1.25 * max(w, h)
        assert (np.abs(joints[:, 0] - cx) <= half).all() and (np.abs(joints[:, 1] - cy) <= half).all()
    img = mpimg.imread(project / "pred" / "000000040083_overlay.png")
    assert img.shape[0] > 200 and img[..., :3].std() > 0.05


def test_predict_whole_image_default_out(project):
    save_models(project)
    assert cli(["predict", str(IMAGE)]) == 0
    results = json.loads((project / "results" / "predict" / "000000040083_keypoints.json").read_text())
    assert len(results) == 1 and len(results[0]["keypoints"]) == 51


def test_predict_with_a_refiner_on_a_subset_of_feature_levels(project):
    """A refiner trained on `cache.feature_levels: [1, 2]` gets those backbone levels, not all three."""
    save_models(project, levels=[1, 2])
    assert cli(["predict", str(IMAGE), "--out", "pred"]) == 0
    assert len(json.loads((project / "pred" / "000000040083_keypoints.json").read_text())) == 1


@pytest.mark.parametrize("backbone,refiner,stage", [(False, True, "train_backbone"), (True, False, "train_refiner")])
def test_predict_missing_models(project, capsys, backbone, refiner, stage):
    save_models(project, backbone, refiner)
    assert cli(["predict", str(IMAGE)]) == 1
    err = capsys.readouterr().err
    assert f"sgpose {stage}" in err and ".pt" in err


def test_predict_bad_image(project, capsys):
    save_models(project)
    assert cli(["predict", "missing.jpg"]) == 1
    assert "missing.jpg: image not found" in capsys.readouterr().err
    (project / "broken.jpg").write_bytes(b"not an image")
    assert cli(["predict", "broken.jpg"]) == 1
    assert "broken.jpg: not a decodable image" in capsys.readouterr().err


def test_parse_boxes():
    assert parse_boxes([], 640, 480).tolist() == [[0, 0, 640, 480]]
    assert parse_boxes(["1,2,3,4"], 9, 9).tolist() == [[1, 2, 3, 4]]
    for bad in ["1,2,3", "1,2,0,4", "a,b,c,d"]:
        with pytest.raises(ValueError, match="x,y,w,h"):
            parse_boxes([bad], 9, 9)


@pytest.mark.parametrize("box, says", [("nan,10,50,50", "finite numbers"), ("10,10,inf,50", "finite numbers"),
                                       ("100000,100000,50,50", "outside the"), ("-500,10,100,50", "outside the")])
def test_predict_refuses_non_finite_and_outside_boxes(project, capsys, box, says):
    save_models(project)
    assert cli(["predict", str(IMAGE), f"--boxes={box}", "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sgpose predict: error: --boxes '{box}': ") and says in err
    assert not Path("out").exists()


def test_predict_crops_are_in_the_checkpoints_colour_order(tmp_path):
    from sgpose.data.dataset import ImageNorm, read_rgb
    from sgpose.stages.predict import crops

    tiny_params(tmp_path)
    rgb, bgr = (load_params(tmp_path / "params.yaml", [f"backbone.input_color={c}"]) for c in ("rgb", "bgr"))
    image, boxes = read_rgb(IMAGE), np.array([[10.0, 20.0, 200.0, 300.0]])
    x_rgb, c_rgb, s_rgb = crops(image, boxes, rgb)
    x_bgr, c_bgr, s_bgr = crops(image, boxes, bgr)
    assert np.array_equal(c_rgb, c_bgr) and np.array_equal(s_rgb, s_bgr)
    mean, std = (torch.from_numpy(a)[:, None, None] for a in (ImageNorm.MEAN, ImageNorm.STD))
    pixels = x_rgb[0] * std + mean  # the crop's RGB values in [0, 1]
    torch.testing.assert_close(x_bgr[0], (pixels.flip(0) - mean) / std, atol=1e-5, rtol=0)
