"""The UNet's shape contract (docs/method.md, "The structure-guided UNet") for both backbones' feature
lists, and that every input matters."""

import pytest
import torch
from conftest import as_trained
from sgpose.method.unet import ResBlock, StructureGuidedUNet, step_embedding
from sgpose.models.features import feature_info

SIMPLE_BASELINE = [(256, 64, 48), (256, 32, 24), (256, 16, 12)]
HRNET_W32 = [(32, 64, 48), (64, 32, 24), (128, 16, 12), (256, 8, 6)]


@pytest.mark.parametrize("feats", [SIMPLE_BASELINE, HRNET_W32], ids=["simple_baseline", "hrnet_w32"])
def test_output_shape_for_feature_lists(feats):
    torch.manual_seed(0)
    unet = StructureGuidedUNet(17, feature_info([c for c, _, _ in feats]), base_channels=16, time_dim=32)
    features = [torch.randn(2, c, h, w) for c, h, w in feats]
    out = unet(features, torch.rand(2, 17, 64, 48), torch.tensor([0, 5]))
    assert out.shape == (2, 17, 64, 48)


def test_guidance_step_and_each_feature_change_the_output():
    torch.manual_seed(0)
    unet = as_trained(StructureGuidedUNet(4, feature_info([8, 8, 8]), base_channels=8, channel_mults=[1, 2, 2], time_dim=16)).eval()
    feats = [torch.randn(1, 8, 16, 12), torch.randn(1, 8, 8, 6), torch.randn(1, 8, 4, 3)]
    H, t = torch.rand(1, 4, 16, 12), torch.tensor([1])
    ref = unet(feats, H, t)
    assert not torch.allclose(ref, unet(feats, H, torch.tensor([3])))
    assert not torch.allclose(ref, unet(feats, torch.zeros_like(H), t))
    for i in range(3):
        changed = [f.clone() for f in feats]
        changed[i] = changed[i] + 1
        assert not torch.allclose(ref, unet(changed, H, t)), f"feature {i} is not injected"


def test_the_input_gain_scales_the_maps_and_nothing_else():
    """refiner.guidance_gain: a UNet with gain g given H is the same UNet (same weights) given g H; F_0 unscaled."""
    torch.manual_seed(0)
    unet = as_trained(StructureGuidedUNet(4, feature_info([8, 8, 8]), base_channels=8, channel_mults=[1, 2, 2], time_dim=16)).eval()
    gained = StructureGuidedUNet(4, feature_info([8, 8, 8]), base_channels=8, channel_mults=[1, 2, 2], time_dim=16,
                                 input_gain=20.0).eval()
    gained.load_state_dict(unet.state_dict())
    feats = [torch.randn(1, 8, 16, 12), torch.randn(1, 8, 8, 6), torch.randn(1, 8, 4, 3)]
    H, t = torch.rand(1, 4, 16, 12), torch.tensor([2])
    torch.testing.assert_close(gained(feats, H, t), unet(feats, 20.0 * H, t))
    assert not torch.allclose(gained(feats, H, t), unet(feats, H, t))


def test_a_fresh_unet_outputs_zero_heatmaps():
    """guided-diffusion's initialisation: the output conv and each block's second conv start at zero."""
    unet = StructureGuidedUNet(4, feature_info([8, 8, 8]), base_channels=8, channel_mults=[1, 2, 2], time_dim=16)
    feats = [torch.randn(2, 8, 16, 12), torch.randn(2, 8, 8, 6), torch.randn(2, 8, 4, 3)]
    assert torch.equal(unet(feats, torch.rand(2, 4, 16, 12), torch.tensor([0, 3])), torch.zeros(2, 4, 16, 12))
    assert all(not block.conv2.weight.any() for block in unet.modules() if isinstance(block, ResBlock))


def test_step_embedding_and_bad_mults():
    e = step_embedding(torch.tensor([0, 1, 2]), 8)
    assert e.shape == (3, 8) and torch.all(e[0, :4] == 0) and torch.all(e[0, 4:] == 1)
    with pytest.raises(ValueError, match="one multiplier per feature level"):
        StructureGuidedUNet(17, feature_info([8, 8, 8]), channel_mults=[1, 2])
    with pytest.raises(ValueError, match="no channels"):  # A1 (no guidance) without the level-0 feature
        StructureGuidedUNet(17, feature_info([8, 8], [1, 2]), in_channels=0)


def test_a_subset_of_feature_levels_and_a_deeper_unet():
    """cache.feature_levels [1, 2]: no F_0 at the input, the others fused at their own level; a
    4-level UNet over SimpleBaseline's 3 features leaves the lowest level without injection."""
    torch.manual_seed(0)
    feats = [torch.randn(1, 8, 8, 6), torch.randn(1, 8, 4, 3)]
    unet = as_trained(StructureGuidedUNet(4, feature_info([8, 8], [1, 2]), base_channels=8, channel_mults=[1, 2, 2],
                                          time_dim=16)).eval()
    H, t = torch.rand(1, 4, 16, 12), torch.tensor([1])
    ref = unet(feats, H, t)
    assert ref.shape == (1, 4, 16, 12) and unet.downs[0][1].in_channels == 4  # guidance only at the input
    for i in range(2):
        changed = [f.clone() for f in feats]
        changed[i] = changed[i] + 1
        assert not torch.allclose(ref, unet(changed, H, t)), f"feature level {i + 1} is not injected"
    with pytest.raises(ValueError, match=r"3 backbone features given; this refiner was built for feature levels \[1, 2\]"):
        unet([torch.randn(1, 8, 16, 12), *feats], H, t)
    deep = StructureGuidedUNet(4, feature_info([8, 8, 8]), base_channels=8, channel_mults=[1, 2, 2, 4], time_dim=16)
    full = [torch.randn(1, 8, 16, 12), *feats]
    assert deep(full, H, t).shape == (1, 4, 16, 12) and deep.downs[3][1].in_channels == 16  # level 3: no feature
