"""Heatmap training targets (the usual SimpleBaseline/HRNet encoding) and the Gaussian maps they are
made of, in torch (the guidance sequence renders the same maps: `sgpose.method.guidance`).

The ENCODER only: the cache stores these targets, so this module is in the cache stage's import
closure, whose change invalidates a cache (`sgpose.cache.shards`); decoding lives in
`sgpose.data.decoding`, which the cache never imports.
"""

from __future__ import annotations

import torch
from torch import Tensor


def encode_targets(joints: Tensor, visible: Tensor, size: tuple[int, int], sigma: float) -> tuple[Tensor, Tensor]:
    """Gaussian targets (N, K, h, w) and weights (N, K) for joints (N, K, 2) in heatmap pixels.

    A joint is trained on (weight 1) when labelled and its Gaussian centre lies inside the map.
    """
    h, w = size
    x, y = joints[..., 0], joints[..., 1]
    inside = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    weight = (visible > 0) & inside
    return render_gaussians(joints.float(), size, sigma, weight), weight.float()


def missing_mask(pose: Tensor) -> Tensor:
    """True where a joint is exactly (0, 0), the paper's marker for 'not detected'."""
    return (pose == 0).all(dim=-1)


def render_gaussians(poses: Tensor, size: tuple[int, int], sigma: float, present: Tensor | None = None) -> Tensor:
    """Unnormalised Gaussian maps (..., K, h, w) peaking at 1 on each joint (x along w, y along h).

    present (..., K) selects joints to draw; by default every joint not at exactly (0, 0).
    """
    h, w = size
    if present is None:
        present = ~missing_mask(poses)
    xs = torch.arange(w, dtype=poses.dtype, device=poses.device)
    ys = torch.arange(h, dtype=poses.dtype, device=poses.device)
    gx = torch.exp(-((xs - poses[..., 0:1]) ** 2) / (2 * sigma**2))  # (..., K, w)
    gy = torch.exp(-((ys - poses[..., 1:2]) ** 2) / (2 * sigma**2))  # (..., K, h)
    maps = gy[..., :, None] * gx[..., None, :]  # separable: exp(-(dx^2+dy^2)/2s^2)
    return maps * present[..., None, None].to(maps.dtype)
