"""`sgpose infer_online` (sgpose.inference.online): an evaluation split scored in one streaming pass over its crops,
without a cache, gives the cached path's predictions for the baseline and a refined variant (to the
rounding of the cache's fp16 storage; exactly with a float32 cache), and the cache stage skips it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import as_trained, write_instances
from sgpose.cli import main as cli
from sgpose.config.selection import load_params
from sgpose.method.refiner import build_unet
from sgpose.models.features import from_json
from test_cache_stage import tiny_project

BB = Path("results/fx/tiny")
SMALL = ["--set", "refiner.base_channels=8", "--set", "refiner.time_dim=16", "--set", "train_refiner.batch_size=4",
         "--set", "prepare.detections=dets.json", "--set", "evals={tiny: [val, val_det]}", "--set", "infer.batch_size=3"]
ONLINE = ["--set", "online={tiny: [val_det]}"]
ALL = ("baseline", "baseline_dark", "ours")  # every variant scored on val_det


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The tiny COCO-fixture project with a val_det split (the val crops, scored by their box score), a
    0-epoch backbone, its train cache and an `ours` refiner whose weights are drawn as training leaves them."""
    monkeypatch.chdir(tmp_path)
    params_file, table = tiny_project(tmp_path)
    write_instances(tmp_path, "fx", val_det=table.iloc[7:].assign(score=np.linspace(0.5, 0.9, len(table) - 7)))
    args = ["--params", str(params_file), *SMALL]
    assert cli(["train_backbone", *args]) == 0
    _as_trained_backbone(BB / "backbone.pt")
    assert cli(["cache", *args, *ONLINE]) == 0
    assert cli(["train_refiner", *args, "--set", "train_refiner.epochs=1"]) == 0
    ckpt = torch.load(BB / "ours" / "refiner.pt", weights_only=False)
    params = load_params(params_file, [a for a in args[2:] if a != "--set"])
    unet = build_unet(params.refiner, 17, from_json(ckpt["features"]))
    unet.load_state_dict(ckpt["state_dict"])
    ckpt["state_dict"] = as_trained(unet, std=0.2).state_dict()  # a fresh UNet's zero convs output zeros
    torch.save(ckpt, BB / "ours" / "refiner.pt")
    return args


def _as_trained_backbone(path: Path) -> None:
    """The backbone's weights drawn at trained-network scale (He-normal convs, BN gains about 1): a freshly
    initialised SimpleBaseline outputs heatmaps of ~1e-8, which fp16 stores as 0 and any decoding reads as ties."""
    ckpt, gen = torch.load(path, weights_only=False), torch.Generator().manual_seed(0)
    for key, value in ckpt["state_dict"].items():
        if key.endswith("weight") and value.dim() > 1:
            fan_in = value[0].numel() if "deconv" not in key else value.shape[0] * value[0, 0].numel()
            value.copy_(torch.randn(value.shape, generator=gen) * (2 / fan_in) ** 0.5)
        elif key.endswith("weight"):  # batch norm gains
            value.copy_(1 + 0.1 * torch.randn(value.shape, generator=gen))
    torch.save(ckpt, path)


def _predictions(variant: str, split: str) -> list[dict]:
    return json.loads((BB / variant / "predictions" / f"{split}.json").read_text())


def _cached(args: list[str], dtype: str, variants: tuple[str, ...]) -> dict[str, list[dict]]:
    """The variants' val_det predictions from a val_det cache of `dtype`."""
    assert cli(["cache", *args, "--set", f"cache.dtype={dtype}", "--split", "val_det"]) == 0
    for variant in variants:
        assert cli(["infer", *args, "--set", f"cache.dtype={dtype}", "--variant", variant]) == 0
    return {v: _predictions(v, "val_det") for v in variants}


def _arrays(results: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, keypoints (N, K, 3), instance scores) of a predictions file."""
    return (np.array([r["image_id"] for r in results]), np.array([r["keypoints"] for r in results]).reshape(len(results), -1, 3),
            np.array([r["score"] for r in results]))


def test_online_split_is_not_cached_and_written_for_every_variant(project, capsys):
    assert not (BB / "cache" / "val_det.h5").exists() and (BB / "cache" / "val.h5").is_file()
    assert cli(["infer", *project, *ONLINE, "--variant", "ours"]) == 0  # the cached splits only
    assert sorted(p.name for p in (BB / "ours" / "predictions").iterdir()) == ["val.json"]
    assert cli(["infer", *project, *ONLINE, "--variant", "ours", "--split", "val_det"]) == 1
    assert "scores it online" in capsys.readouterr().err
    assert cli(["infer_online", *project, *ONLINE, "--split", "val"]) == 1  # val is cached
    assert "--split val" in capsys.readouterr().err
    assert cli(["infer_online", *project, *ONLINE, "--set", "cache.feature_levels=[1,2]"]) == 1
    assert "ours/refiner.pt: trained on feature levels [0, 1, 2]" in capsys.readouterr().err
    assert cli(["infer_online", *project, *ONLINE]) == 0
    for variant in ALL:
        assert len(_predictions(variant, "val_det")) == 5
    assert not (BB / "cache" / "val_det.h5").exists()


def test_online_predictions_are_the_cached_ones(project):
    """The same crops, backbone outputs, refiners and decoders: a float32 cache gives the online predictions
    to float32 rounding; the default fp16 cache to its rounding of Y0 and the features: keypoints within a
    quarter heatmap pixel (the decoding's sub-pixel step) and scores within fp16's relative precision."""
    assert cli(["infer_online", *project, *ONLINE]) == 0
    online = {v: _arrays(_predictions(v, "val_det")) for v in ALL}
    params = load_params(project[1], [a for a in project[2:] if a != "--set"])
    area = np.array([r["area"] for r in _predictions("baseline", "val_det")])  # crop scale_w * scale_h
    quarter_pixel = (area * params.prepare.aspect_ratio) ** 0.5 / params.backbone.heatmap_size[1] / 4  # image pixels
    # DARK decoding (baseline_dark) differentiates the log heatmap: fp16 storage moves it further, so it is
    # compared with the float32 cache only
    for dtype, kp_tol, score_rtol, variants in (("float32", 1e-3, 1e-5, ALL),
                                                ("float16", quarter_pixel, 2e-3, ("baseline", "ours"))):
        cached = {v: _arrays(r) for v, r in _cached(project, dtype, variants).items()}
        for variant in variants:
            (ids, kp, score), (c_ids, c_kp, c_score) = online[variant], cached[variant]
            assert (ids == c_ids).all()
            assert (np.abs(kp[..., :2] - c_kp[..., :2]).max(axis=(1, 2)) <= kp_tol).all(), (dtype, variant)
            np.testing.assert_allclose(kp[..., 2], c_kp[..., 2], rtol=score_rtol, atol=1e-7, err_msg=f"{dtype} {variant}")
            np.testing.assert_allclose(score, c_score, rtol=score_rtol, atol=1e-7, err_msg=f"{dtype} {variant}")
    assert np.abs(online["ours"][1] - online["baseline"][1]).max() > 1  # the refiner changes the predictions
