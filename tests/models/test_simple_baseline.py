"""SimpleBaseline: official state_dict layout, forward shapes, feature order, checkpoint loading."""

import json
from pathlib import Path

import pytest
import torch
from sgpose.config.schema import BackboneParams
from sgpose.models.backbones import build_backbone
from sgpose.models.checkpoints import load_backbone
from sgpose.models.simple_baseline import PoseResNet

LAYOUTS = Path("/work/shared/fixtures/checkpoint_layouts")


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_state_dict_matches_official_layout(depth):
    fixture = json.loads((LAYOUTS / f"hrnet_repo_pose_resnet_{depth}_256x192.json").read_text())
    model = PoseResNet(depth, num_joints=17, deconv_channels=256)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(fixture["keys"])  # same names in the same order
    assert ours == fixture["keys"]
    assert sum(p.numel() for p in model.parameters()) == fixture["num_parameters"]


def test_forward_shapes_and_feature_order_r18():
    model = PoseResNet(18, num_joints=17, deconv_channels=32).eval()
    with torch.no_grad():
        heatmaps, feats = model(torch.randn(2, 3, 256, 192))
    assert heatmaps.shape == (2, 17, 64, 48)
    assert [tuple(f.shape) for f in feats] == [(2, 32, 64, 48), (2, 32, 32, 24), (2, 32, 16, 12)]
    assert [f.channels for f in model.feature_info] == [32, 32, 32]
    assert all((f >= 0).all() for f in feats)  # ReLU outputs


def test_forward_shapes_r50():
    model = PoseResNet(50, num_joints=17).eval()
    with torch.no_grad():
        heatmaps, feats = model(torch.randn(1, 3, 256, 192))
    assert heatmaps.shape == (1, 17, 64, 48)
    assert [tuple(f.shape) for f in feats] == [(1, 256, 64, 48), (1, 256, 32, 24), (1, 256, 16, 12)]
    # F_0 is what the final 1x1 conv reads
    assert torch.allclose(model.final_layer(feats[0]), heatmaps, atol=1e-6)


def test_head_init_as_official():
    model = PoseResNet(18, num_joints=5, deconv_channels=16)
    assert model.final_layer.bias.abs().max() == 0
    assert model.deconv_layers[0].weight.std() < 0.002
    assert model.deconv_layers[1].weight.eq(1).all() and model.deconv_layers[1].bias.eq(0).all()


def test_load_backbone_frozen_and_prefixed(tmp_path):
    bp = BackboneParams(name="t", depth=18, deconv_channels=16, input_size=(64, 64), heatmap_size=(16, 16))
    model = build_backbone(bp, 5)
    ours = tmp_path / "backbone.pt"
    torch.save({"state_dict": model.state_dict(), "backbone": bp.model_dump(mode="json"), "num_joints": 5}, ours)
    loaded = load_backbone(ours, bp, 5)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    # mmpose 1.x naming: backbone.* / head.*
    mm = tmp_path / "mmpose.pth"
    renamed = {("head." if k.startswith(("deconv", "final")) else "backbone.") + k: v
               for k, v in model.state_dict().items()}
    torch.save({"meta": {}, "state_dict": renamed}, mm)
    assert torch.equal(load_backbone(mm, bp, 5).final_layer.weight, model.final_layer.weight)


def test_input_size_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        BackboneParams(name="t", depth=18, input_size=(64, 48), heatmap_size=(16, 12))


def test_load_backbone_errors_name_file(tmp_path):
    bp = BackboneParams(name="t", depth=18, deconv_channels=16, input_size=(64, 64), heatmap_size=(16, 16))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone(tmp_path / "missing.pt", bp, 5)
    bad = tmp_path / "wrong.pt"
    torch.save({"state_dict": build_backbone(bp, 7).state_dict()}, bad)
    with pytest.raises(ValueError, match="wrong.pt"):
        load_backbone(bad, bp, 5)
