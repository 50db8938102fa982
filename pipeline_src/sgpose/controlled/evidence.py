"""Synthetic evidence of the true pose in a controlled backbone's features: the benchmark where a refiner
can gain over its input (`backbones.<name>.evidence`, `sgpose.config.controlled.EvidenceParams`).

On a perturbed backbone the features come from a real backbone (`features_from`) that may know nothing
about the pose (the sample's is at AP ~0), so a refiner can at best return its guidance. Here, for
informativeness lam in [0, 1], every feature level l (h_l x w_l = the heatmap size / 2^l) gets, in channels
c_k = offset + k (k = 0..K-1, one per joint),

    F'_l[c_k] = (1 - lam) F_l[c_k] + lam A_l E_{l,k}
    E_{l,k}(x, y) = keep_k exp(-|(x, y) - e_k / 2^l|^2 / (2 s_l^2)) + (1 - lam) noise N_{l,k}(x, y)
    e_k    = gt_k + d_k (cos th_k, sin th_k), d_k = the OKS displacement of keypoint similarity
             ks_k ~ U[1 - (1 - lam)(1 - ks_floor), 1] (`sgpose.controlled.perturb.displacement`), th_k ~ U[0, 2 pi)
    keep_k = [labelled] and [u >= (1 - lam) drop]
    s_l    = max(sigma (1 + (1 - lam) blur) / 2^l, 0.5)     (sigma: the targets' sigma at the heatmap)
    N      = standard normal per pixel
    A_l    = amplitude x the sample's 99th percentile of F_l over those channels (the strongest activations
             the evidence replaces)

so lam = 0 leaves the features as they are and lam = 1 writes clean ground-truth Gaussians. Draws: one numpy
stream per instance, (seed, 2, ann_id) for an evaluation split's fixed draws and (seed, 3, epoch, ann_id) in
refiner training (fresh every epoch, as the perturbed Y0's; the second word keeps the two independent); per
instance: uniforms (K, 3) (ks, angle, drop), then the noise level by level (K, h_l, w_l). The mirrored view
(flip test): the same draws, x' = w_l - x, left and right swapped, the noise mirrored (as Y0's,
`perturb.render_y0`), so `flip_back` maps it onto the plain view's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sgpose.config.controlled import EvidenceParams
from sgpose.controlled.perturb import displacement
from sgpose.data.targets import render_gaussians

AMPLITUDE_QUANTILE = 0.99


def draws(ann_ids, p: EvidenceParams, sizes: list[tuple[int, int]], epoch: int | None = None) -> tuple[Tensor, list[Tensor]]:
    """(uniforms (B, K, 3), noise per level (B, K, h_l, w_l)), one seeded stream per instance."""
    k = p.channels
    u = np.empty((len(ann_ids), k, 3), np.float32)
    noise = [np.empty((len(ann_ids), k, h, w), np.float32) for h, w in sizes]
    for b, ann in enumerate(np.asarray(ann_ids, np.int64).reshape(-1)):
        rng = np.random.default_rng([p.seed, 2, int(ann)] if epoch is None else [p.seed, 3, epoch, int(ann)])
        u[b] = rng.random((k, 3))
        for level, (h, w) in enumerate(sizes):
            noise[level][b] = rng.standard_normal((k, h, w))
    return torch.from_numpy(u), [torch.from_numpy(n) for n in noise]


def evidence_maps(joints: Tensor, area: Tensor, u: Tensor, noise: list[Tensor], p: EvidenceParams, sigma: float,
                  sigmas, flip_perm=None) -> list[Tensor]:
    """E_{l,k} of every level (B, K, h_l, w_l) for ground truth `joints` (B, >=K, 3) in heatmap px and the OKS
    `area` (B,) in heatmap px^2; with `flip_perm`, the mirrored crop's."""
    k, lam = p.channels, p.informativeness
    gt, labelled = joints[:, :k, :2].float(), joints[:, :k, 2] > 0
    lo = 1 - (1 - lam) * (1 - p.ks_floor)
    ks = lo + (1 - lo) * u[..., 0]
    d = displacement(ks, torch.as_tensor(np.asarray(sigmas)[:k], dtype=torch.float32), area.float())
    angle = 2 * math.pi * u[..., 1]
    pos = gt + d[..., None] * torch.stack([angle.cos(), angle.sin()], dim=-1)
    keep = labelled & (u[..., 2] >= (1 - lam) * p.drop)
    out = []
    for level, nz in enumerate(noise):
        h, w = nz.shape[-2:]
        f, at, show = 2**level, pos / 2**level, keep
        if flip_perm is not None:
            perm = torch.as_tensor(np.asarray(flip_perm)[:k], dtype=torch.long)
            at = torch.stack([w - at[..., 0], at[..., 1]], dim=-1)[:, perm]
            show, nz = show[:, perm], nz.flip(-1)[:, perm]
        s = max(sigma * (1 + (1 - lam) * p.blur) / f, 0.5)
        out.append(render_gaussians(at, (h, w), s, show) + (1 - lam) * p.noise * nz)
    return out


def mix(feats: list[Tensor], evidence: list[Tensor], p: EvidenceParams) -> list[Tensor]:
    """F'_l = the features with the evidence mixed into channels offset..offset+K-1 (new tensors)."""
    a, b, lam = p.offset, p.offset + p.channels, p.informativeness
    out = []
    for f, e in zip(feats, evidence):
        f = f.float()
        part = f[:, a:b]
        peak = torch.quantile(part.flatten(1), AMPLITUDE_QUANTILE, dim=1)[:, None, None, None]  # (B, 1, 1, 1)
        mixed = f.clone()
        mixed[:, a:b] = (1 - lam) * part + lam * p.amplitude * peak * e
        out.append(mixed)
    return out


def check_channels(p: EvidenceParams, feature_channels: list[int], num_joints: int, flip_perm) -> None:
    """The evidence fits the features (channels offset..offset+K-1 at every level) and the layout (K joints
    closed under the flip); else a ValueError naming the params."""
    if p.channels > num_joints:
        raise ValueError(f"evidence.channels {p.channels}: the layout has {num_joints} joints")
    if p.offset + p.channels > min(feature_channels):
        raise ValueError(f"evidence.offset + channels = {p.offset + p.channels}: the features have "
                         f"{min(feature_channels)} channels at their narrowest level")
    if any(int(j) >= p.channels for j in np.asarray(flip_perm)[:p.channels]):
        raise ValueError(f"evidence.channels {p.channels}: the first {p.channels} joints must be closed under the "
                         "layout's flip (left/right pairs together)")
