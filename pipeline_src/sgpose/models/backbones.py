"""Build the backbone that the `backbone` params section names (SimpleBaseline or HRNet)."""

from __future__ import annotations

import torch
from torch import nn

from sgpose.config.schema import BackboneParams
from sgpose.models.hrnet import PoseHighResolutionNet
from sgpose.models.simple_baseline import PoseResNet


def build_backbone(bp: BackboneParams, num_joints: int) -> nn.Module:
    """A freshly initialised backbone; forward(x) -> (heatmaps, features highest resolution first)."""
    if bp.arch == "simple_baseline":
        return PoseResNet(bp.depth, num_joints, deconv_channels=bp.deconv_channels)
    if bp.arch == "hrnet":
        return PoseHighResolutionNet(bp.width, num_joints)
    raise ValueError(f"unsupported backbone arch {bp.arch!r}")


def describe(bp: BackboneParams, num_joints: int) -> str:
    """The architecture in words, for error messages."""
    if bp.arch == "hrnet":
        return f"HRNet-W{bp.width} with {num_joints} joints"
    return f"ResNet-{bp.depth} SimpleBaseline with {num_joints} joints and {bp.deconv_channels} deconv channels"


# what a checkpoint saved by train_backbone must agree on with the params, per arch
ARCH_FIELDS = {"simple_baseline": ("arch", "depth", "deconv_channels"), "hrnet": ("arch", "width")}


def forward_views(model: nn.Module, images: torch.Tensor, flip: bool = False,
                  levels: list[int] | None = None) -> dict[str, torch.Tensor]:
    """The frozen backbone's outputs keyed by cache dataset name, as float32: `heatmaps` (Y0) and the
    selected feature levels as `feat/0..` (all by default, highest resolution first); with `flip`,
    also `flip/heatmaps`, `flip/feat/..` of the mirrored crops (the flip test)."""
    out = {}
    for prefix, x in [("", images), *([("flip/", images.flip(-1))] if flip else [])]:
        heatmaps, feats = model(x)
        keep = range(len(feats)) if levels is None else levels
        if max(keep) >= len(feats):
            raise ValueError(f"cache.feature_levels {levels}: this backbone has feature levels 0..{len(feats) - 1}")
        out[f"{prefix}heatmaps"] = heatmaps.float()
        out |= {f"{prefix}feat/{i}": feats[level].float() for i, level in enumerate(keep)}
    return out


def forward_trunk(model: nn.Module, images: torch.Tensor, levels: list[int] | None = None) -> dict[str, torch.Tensor]:
    """What a train cache of `cache.store: trunk` holds of a SimpleBaseline, as float32: `heatmaps` (Y0, the
    whole network's) and `trunk` (the C5 map its deconv head starts from; `features_of_trunk` reruns it)."""
    trunk = model.forward_body(images)
    heatmaps, feats = model.forward_head(trunk)
    if levels is not None and max(levels) >= len(feats):
        raise ValueError(f"cache.feature_levels {levels}: this backbone has feature levels 0..{len(feats) - 1}")
    return {"heatmaps": heatmaps.float(), "trunk": trunk.float()}


def features_of_trunk(model: nn.Module, trunk: torch.Tensor, levels: list[int] | None = None) -> list[torch.Tensor]:
    """The feature levels `levels` (all by default) of a SimpleBaseline's deconv head run on a cached trunk,
    highest resolution first, as float32: what `forward_views` gives for the crop, to the rounding of the
    trunk's storage."""
    _, feats = model.forward_head(trunk)
    return [feats[level].float() for level in (range(len(feats)) if levels is None else levels)]
