"""Training (SPEC 4, Algorithm 1) and inference (SPEC 5) of the structure-guided refiner.

Pure functions over tensors: the stages in sgpose.stages own the files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sgpose import guidance
from sgpose.config import GuidanceParams, Params
from sgpose.data.heatmaps import predicted_pose
from sgpose.keypoints import get_layout
from sgpose.losses import joints_mse
from sgpose.models.unet import StructureGuidedUNet


@dataclass(frozen=True)
class GuidanceSpec:
    """What builds {H(t)}: the guidance params plus the map geometry and the start pose (K, 2)."""

    params: GuidanceParams
    start: Tensor
    sigma: float
    size: tuple[int, int]

    def maps(self, y0: Tensor) -> Tensor:
        """G^0..G^{S-1} (B, S, K, h, w) from P_start to P_pred, P_pred decoded from Y0 (SPEC 2)."""
        pred = predicted_pose(y0, self.params.pred_threshold)
        p = self.params
        return guidance.guidance_maps(self.start, pred, p.S, p.schedule, self.sigma, self.size, p.missing)


def training_loss(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor,
                  target: Tensor, weight: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Algorithm 1: draw t ~ U{0..T-1} per sample, build H(t) from P_start -> P_pred, regress G_gt.

    The path is built from the backbone's prediction, not ground truth ("path consistency").
    """
    T = spec.params.T
    t = torch.randint(0, T, (y0.shape[0],), generator=generator, device=y0.device)
    H = guidance.fuse_at(spec.maps(y0), guidance.fusion_weights(spec.params.S), t)
    return joints_mse(unet(feats, H, t), target, weight)


@torch.no_grad()
def refine_static(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor) -> Tensor:
    """SPEC 5 `static`: {H(t)} built once from P_start -> P_pred, UNet run per step, last output kept.

    Without the previous-heatmap input the steps do not feed each other, so only the last step
    t = T-1 (guidance H(T-1) = G^{S-1}, the prediction's own map) can change the result: the
    other T-1 UNet calls are skipped.
    """
    T = spec.params.T
    t = torch.full((y0.shape[0],), T - 1, dtype=torch.long, device=y0.device)
    H = guidance.fuse_at(spec.maps(y0), guidance.fusion_weights(spec.params.S), t)
    return unet(feats, H, t)


def guidance_spec(params: Params) -> GuidanceSpec:
    """The guidance geometry for a params file: canonical start pose, sigma scaled to the heatmap."""
    size = tuple(params.backbone.heatmap_size)
    start = torch.from_numpy(get_layout(params.layout).canonical_pose(size))
    return GuidanceSpec(params.guidance, start, params.backbone.heatmap_sigma, size)


def build_unet(params: Params, feature_channels: list[int]) -> StructureGuidedUNet:
    """The refiner for this params file and this backbone's feature list."""
    rp = params.refiner
    return StructureGuidedUNet(get_layout(params.layout).num_joints, feature_channels,
                               rp.base_channels, rp.channel_mults, rp.time_dim)
