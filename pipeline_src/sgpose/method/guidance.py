"""The graduated-guidance sequence {H(t)} of docs/method.md §2, batched: no loop over samples,
joints or steps.

    alphas          schedule weights alpha_s, 0 at the start pose, 1 at the prediction
    interpolate     P^s = (1 - alpha_s) P_start + alpha_s P_pred          (with missing-joint readings)
    render_gaussians  G_k^s = exp(-|x - p_k^s|^2 / 2 sigma^2), all-zero where the joint is missing
                    (`sgpose.data.targets`: the training targets are the same Gaussians)
    fusion_weights  w(t, s): H(t) = max_s w(t, s) G^s,  T = S + 2
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sgpose.core.modes import A3Steps, Missing, Schedule
from sgpose.core.variants import GuidanceKind
from sgpose.data.targets import missing_mask, render_gaussians

COSINE_S0 = 0.008  # improved-DDPM cosine schedule offset (Nichol & Dhariwal 2021)


def alphas(S: int, schedule: Schedule = Schedule.COSINE) -> Tensor:
    """alpha_s for s = 0..S-1, increasing from exactly 0 to exactly 1 (S = 1: just the prediction).

    cosine: alpha_s = 1 - abar(s / (S-1)), abar(u) = f(u) / f(0), f(u) = cos^2((u + s0) / (1 + s0) * pi/2).
    """
    if S < 1:
        raise ValueError(f"S must be >= 1, got {S}")
    if S == 1:
        return torch.ones(1, dtype=torch.float64)
    u = torch.linspace(0.0, 1.0, S, dtype=torch.float64)
    if schedule == Schedule.LINEAR:
        a = u
    elif schedule == Schedule.COSINE:
        f = torch.cos((u + COSINE_S0) / (1 + COSINE_S0) * math.pi / 2) ** 2
        a = 1 - f / f[0]
    else:
        raise ValueError(f"unknown schedule {schedule!r}; use {' or '.join(Schedule)}")
    a[0], a[-1] = 0.0, 1.0  # exact endpoints: G^0 is the start, G^{S-1} the prediction
    return a


def fusion_weights(S: int) -> Tensor:
    """w(t, s) of docs/method.md §2 as a (T, S) tensor, T = S + 2.

    w = 1 at (t=0, s=0) and (t=T-1, s=S-1); inside, (S - 2 - |s - (t-1)|) / (S - 1) where
    |s - (t-1)| <= S - 2; 0 elsewhere. S = 1 divides by zero: every step sees the prediction.
    """
    if S < 1:
        raise ValueError(f"S must be >= 1, got {S}")
    T = S + 2
    if S == 1:
        return torch.ones(T, 1, dtype=torch.float64)
    t = torch.arange(T, dtype=torch.float64)[:, None]
    s = torch.arange(S, dtype=torch.float64)[None, :]
    dist = (s - (t - 1)).abs()
    w = torch.where(dist <= S - 2, (S - 2 - dist) / (S - 1), torch.zeros(()))
    w[0], w[-1] = 0.0, 0.0
    w[0, 0], w[-1, -1] = 1.0, 1.0
    return w


def step_weights(kind: GuidanceKind, S: int, a3_steps: A3Steps = A3Steps.CLAMP) -> Tensor:
    """w(t, s) as a (T, S) tensor for a variant's guidance kind (`sgpose.core.variants`); T = rows.

    none          (1, S) zeros: one step, no map
    prediction    (1, S) one-hot at s = S-1: the prediction's own map G^{S-1}, one step
    interpolated  clamp: T = S+2 steps, H(t) = G^{clamp(t-1, 0, S-1)} (the same steps as `ours`,
                  so only the fusion differs); per_map: T = S steps, H(t) = G^t
    graduated     fusion_weights(S) (docs/method.md §2), T = S+2
    """
    if kind == GuidanceKind.NONE:
        return torch.zeros(1, S, dtype=torch.float64)
    if kind == GuidanceKind.PREDICTION:
        return torch.eye(S, dtype=torch.float64)[-1:]
    if kind == GuidanceKind.INTERPOLATED:
        if a3_steps == A3Steps.PER_MAP:
            return torch.eye(S, dtype=torch.float64)
        if a3_steps != A3Steps.CLAMP:
            raise ValueError(f"unknown a3_steps reading {a3_steps!r}; use clamp or per_map")
        idx = (torch.arange(S + 2) - 1).clamp(0, S - 1)
        return torch.eye(S, dtype=torch.float64)[idx]
    if kind == GuidanceKind.GRADUATED:
        return fusion_weights(S)
    raise ValueError(f"unknown guidance kind {kind!r}")


def interpolate(start: Tensor, pred: Tensor, a: Tensor, missing: Missing = Missing.LITERAL) -> tuple[Tensor, Tensor]:
    """Poses P^s (B, S, K, 2) and a mask (B, S, K) of joints to render.

    start (K, 2) or (B, K, 2), pred (B, K, 2), a (S,). Readings for a missing predicted joint:
    literal    interpolate toward (0, 0) as written; blank only where the pose is exactly (0, 0)
    keep_start hold the start position, blank at the last map (the prediction's own map)
    blank      blank at every s
    """
    pred = pred.to(torch.float32)
    start = start.to(pred).expand_as(pred)
    a = a.to(pred)[None, :, None, None]
    poses = (1 - a) * start[:, None] + a * pred[:, None]
    gone = missing_mask(pred)[:, None, :].expand(poses.shape[:3])
    if missing == Missing.LITERAL:
        present = ~missing_mask(poses)
    elif missing == Missing.KEEP_START:
        poses = torch.where(gone[..., None], start[:, None].expand_as(poses), poses)
        present = ~gone.clone()
        present[:, :-1] = True
    elif missing == Missing.BLANK:
        present = ~gone
    else:
        raise ValueError(f"unknown missing-joint reading {missing!r}")
    return poses, present


def fuse(G: Tensor, weights: Tensor) -> Tensor:
    """All steps at once: H (B, T, K, h, w) = max_s w(t, s) G^s, for G (B, S, K, h, w)."""
    w = weights.to(G)[None, :, :, None, None, None]
    return (w * G[:, None]).amax(dim=2)


def fuse_at(G: Tensor, weights: Tensor, t: Tensor) -> Tensor:
    """One step per sample: H(t_b) (B, K, h, w) for step indices t (B,): what training draws."""
    w = weights.to(G)[t][:, :, None, None, None]  # (B, S, 1, 1, 1)
    return (w * G).amax(dim=1)


def guidance_maps(
    start: Tensor, pred: Tensor, S: int, schedule: Schedule = Schedule.COSINE, sigma: float = 2.0,
    size: tuple[int, int] = (64, 48), missing: Missing = Missing.LITERAL,
) -> Tensor:
    """The S rendered maps G^0..G^{S-1} (B, S, K, h, w) from P_start to P_pred."""
    poses, present = interpolate(start, pred, alphas(S, schedule), missing)
    return render_gaussians(poses, size, sigma, present)


def guidance_sequence(
    start: Tensor, pred: Tensor, S: int, schedule: Schedule = Schedule.COSINE, sigma: float = 2.0,
    size: tuple[int, int] = (64, 48), missing: Missing = Missing.LITERAL,
) -> Tensor:
    """The graduated guidance {H(t)}, t = 0..T-1, as (B, T, K, h, w) (docs/method.md §2).

    start (K, 2) or (B, K, 2), pred (B, K, 2), in heatmap pixels (x, y); (0, 0) means missing.
    """
    if pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred must be (B, K, 2), got {tuple(pred.shape)}")
    G = guidance_maps(start, pred, S, schedule, sigma, size, missing)
    return fuse(G, fusion_weights(S))


def mean_pose(joints: Tensor, weight: Tensor, fallback: Tensor) -> tuple[Tensor, Tensor]:
    """The mean pose (K, 2) over samples where weight > 0, and the per-joint counts (K,).

    joints (N, K, 2+), weight (N, K); a joint with no weighted sample takes `fallback` (K, 2)
    (the canonical pose): the data-driven alternative to the canonical start pose (docs/method.md §2).
    """
    w = (weight > 0).to(torch.float64)
    count = w.sum(dim=0)
    total = (joints[..., :2].to(torch.float64) * w[..., None]).sum(dim=0)
    mean = total / count.clamp(min=1)[:, None]
    return torch.where(count[:, None] > 0, mean, fallback.to(torch.float64)).to(torch.float32), count.long()
