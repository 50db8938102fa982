"""HRNet-W32/W48: official state_dict layout, forward shapes at 256x192, the feature tap, 14 joints."""

import json
from pathlib import Path

import pytest
import torch
from sgpose.config.schema import BackboneParams
from sgpose.models.backbones import build_backbone
from sgpose.models.hrnet import PoseHighResolutionNet

LAYOUTS = Path("/work/shared/fixtures/checkpoint_layouts")


@pytest.mark.parametrize("width", [32, 48])
def test_state_dict_matches_official_layout(width):
    fixture = json.loads((LAYOUTS / f"hrnet_repo_pose_hrnet_w{width}_256x192.json").read_text())
    model = PoseHighResolutionNet(width, num_joints=17)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(fixture["keys"])  # same names in the same order
    assert ours == fixture["keys"]
    assert sum(p.numel() for p in model.parameters()) == fixture["num_parameters"]


@pytest.mark.parametrize("width", [32, 48])
def test_forward_shapes_and_feature_tap(width):
    model = PoseHighResolutionNet(width, num_joints=17).eval()
    with torch.no_grad():
        heatmaps, feats = model(torch.randn(1, 3, 256, 192))
        last = model.stage4[-1]
        refused = last.fuse(feats)
    assert heatmaps.shape == (1, 17, 64, 48)
    sizes = [(64, 48), (32, 24), (16, 12), (8, 6)]
    assert [tuple(f.shape) for f in feats] == [(1, width * 2 ** i, *hw) for i, hw in enumerate(sizes)]
    assert [(f.level, f.channels) for f in model.feature_info] == [(i, width * 2**i) for i in range(4)]
    # the features are the inputs of the last module's final fusion, which keeps one resolution
    assert len(last.fuse_layers) == 1 and len(refused) == 1
    assert torch.allclose(model.final_layer(refused[0]), heatmaps, atol=1e-5)
    assert all((f >= 0).all() for f in feats)  # BasicBlock outputs are ReLU'd


def test_crowdpose_joints_and_build_from_params():
    bp = BackboneParams(name="h", arch="hrnet", width=32, input_size=(64, 64), heatmap_size=(16, 16))
    model = build_backbone(bp, 14).eval()
    assert isinstance(model, PoseHighResolutionNet) and model.final_layer.weight.shape == (14, 32, 1, 1)
    with torch.no_grad():
        heatmaps, feats = model(torch.randn(2, 3, 64, 64))
    assert heatmaps.shape == (2, 14, 16, 16) and [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_width_validated():
    with pytest.raises(ValueError, match="width must be one of"):
        PoseHighResolutionNet(40, 17)
    with pytest.raises(ValueError, match="width"):
        BackboneParams(name="h", arch="hrnet", width=40)
