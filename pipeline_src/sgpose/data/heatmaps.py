"""Heatmap targets and decoding (the usual SimpleBaseline/HRNet conventions), in torch."""

from __future__ import annotations

import torch
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


def argmax_coords(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer argmax (N, K, 2) as (x, y) floats and the max response (N, K)."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    maxvals, idx = flat.max(dim=-1)
    coords = torch.stack([idx % w, idx // w], dim=-1).to(heatmaps.dtype)
    return coords, maxvals


def decode(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Sub-pixel joints (N, K, 2) and scores (N, K): argmax + quarter-pixel shift toward the
    higher neighbour (SimpleBaseline's get_final_preds)."""
    heatmaps = heatmaps.float()
    coords, maxvals = argmax_coords(heatmaps)
    n, k, h, w = heatmaps.shape
    x, y = coords[..., 0].long(), coords[..., 1].long()
    flat = heatmaps.reshape(n * k, h, w)
    r = torch.arange(n * k, device=heatmaps.device)
    xf, yf = x.reshape(-1), y.reshape(-1)
    interior_x = (xf > 0) & (xf < w - 1)
    interior_y = (yf > 0) & (yf < h - 1)
    dx = flat[r, yf, (xf + 1).clamp(max=w - 1)] - flat[r, yf, (xf - 1).clamp(min=0)]
    dy = flat[r, (yf + 1).clamp(max=h - 1), xf] - flat[r, (yf - 1).clamp(min=0), xf]
    shift = torch.stack([torch.sign(dx) * interior_x, torch.sign(dy) * interior_y], dim=-1) * 0.25
    return coords + shift.reshape(n, k, 2), maxvals


def predicted_pose(heatmaps: Tensor, threshold: float) -> Tensor:
    """P_pred of SPEC 2: per-joint argmax, set to (0, 0) where the max response <= threshold."""
    coords, maxvals = argmax_coords(heatmaps.float())
    return coords * (maxvals > threshold)[..., None]


def flip_back(heatmaps: Tensor, flip_perm, shift: bool = True) -> Tensor:
    """Heatmaps of a horizontally flipped crop, mapped back onto the original crop (flip test).

    Mirrors along width, swaps left/right channels (`flip_perm` from KeypointLayout), and, as
    SimpleBaseline/HRNet do, shifts one pixel right to undo the flip's half-pixel misalignment.
    """
    out = heatmaps.flip(-1)[:, torch.as_tensor(flip_perm, dtype=torch.long)]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out
