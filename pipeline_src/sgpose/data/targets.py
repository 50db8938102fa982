"""Heatmap training targets (the usual SimpleBaseline/HRNet encoding), in torch.

The ENCODER only: the cache stores these targets, so this module is in the cache stage's import
closure, whose change invalidates a cache (`sgpose.cache.shards`); decoding lives in
`sgpose.data.decoding`, which the cache never imports.
"""

from __future__ import annotations

from torch import Tensor

from sgpose.guidance import render_gaussians


def encode_targets(joints: Tensor, visible: Tensor, size: tuple[int, int], sigma: float) -> tuple[Tensor, Tensor]:
    """Gaussian targets (N, K, h, w) and weights (N, K) for joints (N, K, 2) in heatmap pixels.

    A joint is trained on (weight 1) when labelled and its Gaussian centre lies inside the map.
    """
    h, w = size
    x, y = joints[..., 0], joints[..., 1]
    inside = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    weight = (visible > 0) & inside
    return render_gaussians(joints.float(), size, sigma, weight), weight.float()
