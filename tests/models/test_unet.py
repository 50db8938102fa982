"""SPEC 3 shape contract for both backbones' feature lists, and that every input matters."""

import pytest
import torch
from sgpose.models.unet import StructureGuidedUNet, step_embedding

SIMPLE_BASELINE = [(256, 64, 48), (256, 32, 24), (256, 16, 12)]
HRNET_W32 = [(32, 64, 48), (64, 32, 24), (128, 16, 12), (256, 8, 6)]


@pytest.mark.parametrize("feats", [SIMPLE_BASELINE, HRNET_W32], ids=["simple_baseline", "hrnet_w32"])
def test_output_shape_for_feature_lists(feats):
    torch.manual_seed(0)
    unet = StructureGuidedUNet(17, [c for c, _, _ in feats], base_channels=16, time_dim=32)
    features = [torch.randn(2, c, h, w) for c, h, w in feats]
    out = unet(features, torch.rand(2, 17, 64, 48), torch.tensor([0, 5]))
    assert out.shape == (2, 17, 64, 48)


def test_guidance_step_and_each_feature_change_the_output():
    torch.manual_seed(0)
    unet = StructureGuidedUNet(4, [8, 8, 8], base_channels=8, channel_mults=[1, 2, 2], time_dim=16).eval()
    feats = [torch.randn(1, 8, 16, 12), torch.randn(1, 8, 8, 6), torch.randn(1, 8, 4, 3)]
    H, t = torch.rand(1, 4, 16, 12), torch.tensor([1])
    ref = unet(feats, H, t)
    assert not torch.allclose(ref, unet(feats, H, torch.tensor([3])))
    assert not torch.allclose(ref, unet(feats, torch.zeros_like(H), t))
    for i in range(3):
        changed = [f.clone() for f in feats]
        changed[i] = changed[i] + 1
        assert not torch.allclose(ref, unet(changed, H, t)), f"feature {i} is not injected"


def test_step_embedding_and_bad_mults():
    e = step_embedding(torch.tensor([0, 1, 2]), 8)
    assert e.shape == (3, 8) and torch.all(e[0, :4] == 0) and torch.all(e[0, 4:] == 1)
    with pytest.raises(ValueError, match="one entry per backbone feature"):
        StructureGuidedUNet(17, [8, 8, 8], channel_mults=[1, 2])
