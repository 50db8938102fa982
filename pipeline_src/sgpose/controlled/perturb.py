"""Controlled backbones: initial heatmaps Y0 rendered from the ground truth, exactly (`oracle`) or with
synthetic errors (`perturbed`), beside the features of a real backbone (`features_from`).

They measure the refiner at a known, realistic accuracy on a CPU: the baseline is the decoded Y0,
and the refiner must use both the (real) features and the guidance built from Y0 to improve it.
Error types: Ronchi & Perona (ICCV 2017) -- jitter, inversion (left/right), swap (another person's
joint), miss -- plus absent peaks, synthesised per joint as PoseFix (Moon et al., CVPR 2019) does.

    CropContext      other persons' joints in each crop and the OKS area, from the instance table
    instance_uniforms  the seeded per-instance draws: (seed, ann_id), or (seed, epoch, ann_id)
    perturb          ground truth -> (peak positions, drawn or not, error kind): batched, pure
    render_y0        peaks -> Y0 (and the mirrored view's Y0 for the flip test)

Everything but the seeding and the context (a once-per-split table) is batched torch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from sgpose.config.controlled import ORACLE, PerturbParams
from sgpose.data.targets import render_gaussians
from sgpose.data.transforms import affine_matrix, apply_affine, flip_joints
from sgpose.runtime import exact

ARCHS = ("oracle", "perturbed")
KINDS = ("jitter", "inversion", "swap", "miss", "absent", "good")  # codes 0..5 (PerturbParams.rates order, then good)
UNLABELLED = len(KINDS)  # code of a joint without ground truth: never drawn
DRAWS = 4  # uniforms per joint: kind, ks, direction, which other person
MAX_OTHERS = 16  # other persons per crop considered for swaps (the nearest)


def perturb_params(arch: str, perturb: PerturbParams | None) -> PerturbParams:
    """The error model of a controlled arch: none for the oracle, `perturb` (or the calibrated
    defaults) for perturbed."""
    from sgpose.config.controlled import PERTURBED

    if arch == "oracle":
        return ORACLE
    if arch == "perturbed":
        return perturb or PERTURBED
    raise ValueError(f"{arch!r} is not a controlled arch ({', '.join(ARCHS)})")


class CropContext:
    """What the errors need beyond a sample's own ground truth, from a split's instance table: the
    other persons of its image mapped into its crop (for swaps), and its OKS area (for magnitudes)."""

    def __init__(self, rows: pd.DataFrame, flip_perm: np.ndarray):
        rows = rows.reset_index(drop=True)
        self.flip_perm = np.asarray(flip_perm)
        self.row_of = {int(a): i for i, a in enumerate(rows["ann_id"])}
        self.keypoints = np.stack([np.asarray(k, np.float64).reshape(-1, 3) for k in rows["keypoints"]]) \
            if len(rows) else np.zeros((0, len(self.flip_perm), 3))
        self.centers = rows[["center_x", "center_y"]].to_numpy(np.float64)
        self.image, self.width, self.area = (rows[c].to_numpy() for c in ("image_id", "width", "area"))
        self.same_image = rows.groupby("image_id").indices if len(rows) else {}

    def _others(self, i: int) -> np.ndarray:
        """Rows of the other persons in instance i's image, nearest first, at most MAX_OTHERS."""
        others = np.array([o for o in self.same_image[self.image[i]] if o != i], dtype=np.int64)
        dist = np.hypot(*(self.centers[others] - self.centers[i]).T) if len(others) else np.zeros(0)
        return others[np.argsort(dist, kind="stable")][:MAX_OTHERS]

    def __call__(self, ann_ids, centers, scales, heatmap_size: tuple[int, int], rotations=None,
                 flipped=None) -> tuple[Tensor, Tensor]:
        """For samples (ann_id and crop: center, scale, rotation, flipped as in the cache's meta): the
        other persons' joints in heatmap px with visibility, (N, M, K, 3) (visibility 0: padding), and
        the OKS area (the annotation's `area`) in heatmap px^2, (N,)."""
        h, w = heatmap_size
        centers, scales = np.asarray(centers, np.float64), np.asarray(scales, np.float64)
        found, area = [], []
        for j, ann in enumerate(np.asarray(ann_ids).reshape(-1)):
            if int(ann) not in self.row_of:
                raise KeyError(f"ann_id {int(ann)}: not in the instance table (a cache of another split?)")
            i = self.row_of[int(ann)]
            joints = self.keypoints[self._others(i)]
            if flipped is not None and flipped[j]:  # the cache's center is then in the mirrored image
                joints = flip_joints(joints, int(self.width[i]), self.flip_perm)
            rot = float(rotations[j]) if rotations is not None else 0.0
            mat = affine_matrix(centers[j], scales[j], rot, (h, w))
            found.append(np.concatenate([apply_affine(joints[..., :2], mat), joints[..., 2:]], axis=-1))
            area.append(float(self.area[i]) * (w / scales[j][0]) * (h / scales[j][1]))
        others = np.zeros((len(found), max((len(f) for f in found), default=0), self.keypoints.shape[1], 3), np.float32)
        for j, f in enumerate(found):
            others[j, :len(f)] = f
        return torch.from_numpy(others), torch.tensor(area, dtype=torch.float32)


def instance_uniforms(ann_ids, seed: int, num_joints: int, epoch: int | None = None) -> Tensor:
    """(B, K, DRAWS) uniforms in [0, 1), one seeded stream per instance: (seed, ann_id) for the fixed
    draws of an evaluation split, (seed, epoch, ann_id) for a training epoch's fresh ones."""
    out = np.empty((len(ann_ids), num_joints, DRAWS))
    for b, ann in enumerate(np.asarray(ann_ids, dtype=np.int64).reshape(-1)):
        key = [seed, 0, int(ann)] if epoch is None else [seed, 1, epoch, int(ann)]
        out[b] = np.random.default_rng(key).random((num_joints, DRAWS))
    return torch.from_numpy(out).float()


def displacement(ks: Tensor, sigmas: Tensor, area: Tensor) -> Tensor:
    """The distance (heatmap px) at which a joint scores keypoint similarity `ks` under COCO's OKS,
    ks = exp(-d^2 / (2 area (2 sigma_k)^2)): d = 2 sigma_k sqrt(area) sqrt(-2 ln ks). (B, K)."""
    return 2 * sigmas * exact.sqrt(area.clamp(min=1.0))[:, None] * exact.sqrt((-2 * ks.clamp(max=1.0).log()).clamp(min=0))


def _ks(u: Tensor, lo_hi: tuple[float, float]) -> Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * u


def _swap_targets(others: Tensor, u: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Per (b, k): the joint k of one other person labelled inside the heatmap, picked by u (B, K);
    (positions (B, K, 2), whether any exists (B, K))."""
    h, w = size
    if others.shape[1] == 0:  # nobody else in any crop of the batch
        others = others.new_zeros(others.shape[0], 1, *others.shape[2:])
    x, y = others[..., 0], others[..., 1]
    valid = (others[..., 2] > 0) & (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)  # (B, M, K)
    count = valid.sum(dim=1)  # (B, K)
    rank = (u * count).floor().long().clamp(max=(count - 1).clamp(min=0))
    pick = (valid & (valid.long().cumsum(dim=1) - 1 == rank[:, None])).float().argmax(dim=1)  # (B, K)
    pos = others[..., :2].gather(1, pick[:, None, :, None].expand(-1, 1, -1, 2))[:, 0]
    return pos, count > 0


def perturb(joints: Tensor, others: Tensor, area: Tensor, u: Tensor, p: PerturbParams, sigmas,
            flip_perm, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Synthetic predictions from the ground truth, batched over samples and joints.

    joints (B, K, 3) ground truth in heatmap px with visibility; others (B, M, K, 3) the other persons
    (`CropContext`); area (B,) OKS area in heatmap px^2; u (B, K, DRAWS) `instance_uniforms`.
    Returns peak positions (B, K, 2), whether each peak is drawn (B, K: not for unlabelled or absent
    joints) and the kind code (B, K) per `KINDS` (UNLABELLED where there is no ground truth).
    """
    gt, labelled = joints[..., :2].float(), joints[..., 2] > 0
    sig = torch.as_tensor(np.asarray(sigmas), dtype=torch.float32)
    perm = torch.as_tensor(np.asarray(flip_perm), dtype=torch.long)
    edges = torch.tensor(p.rates, dtype=torch.float64).cumsum(0).float()
    kind = (u[..., 0:1] >= edges).sum(-1)  # 0..4 an error of KINDS, 5 good
    inv_ok = labelled[:, perm] & (perm != torch.arange(len(perm)))
    swap_pos, swap_ok = _swap_targets(others.float(), u[..., 3], size)
    kind = torch.where((kind == KINDS.index("inversion")) & ~inv_ok, len(KINDS) - 1, kind)
    kind = torch.where((kind == KINDS.index("swap")) & ~swap_ok, len(KINDS) - 1, kind)
    ks = _ks(u[..., 1], p.good_ks)
    ks = torch.where(kind == KINDS.index("jitter"), _ks(u[..., 1], p.jitter_ks), ks)
    ks = torch.where(kind == KINDS.index("miss"), _ks(u[..., 1], p.miss_ks), ks)
    d = displacement(ks, sig, area.float())
    angle = 2 * math.pi * u[..., 2]
    target = torch.where((kind == KINDS.index("inversion"))[..., None], gt[:, perm], gt)
    target = torch.where((kind == KINDS.index("swap"))[..., None], swap_pos, target)
    pos = target + d[..., None] * torch.stack([angle.cos(), angle.sin()], dim=-1)
    kind = torch.where(labelled, kind, UNLABELLED)
    return pos, labelled & (kind != KINDS.index("absent")), kind


def render_y0(pos: Tensor, drawn: Tensor, size: tuple[int, int], sigma: float, flip_perm=None) -> Tensor:
    """Y0 (B, K, h, w): a unit Gaussian of the target sigma at each drawn peak, none elsewhere. With
    `flip_perm`, the Y0 of the horizontally mirrored crop instead (the cache's `flip/heatmaps`): peaks
    at x' = w - x with left and right swapped, which `sgpose.data.decoding.flip_back` maps back onto
    the peaks of the plain view (its one-pixel shift included)."""
    if flip_perm is not None:
        perm = torch.as_tensor(np.asarray(flip_perm), dtype=torch.long)
        pos = torch.stack([size[1] - pos[..., 0], pos[..., 1]], dim=-1)[:, perm]
        drawn = drawn[:, perm]
    return render_gaussians(pos.float(), size, sigma, drawn)


def synthesise(joints: Tensor, ann_ids, centers, scales, context: CropContext, p: PerturbParams, sigmas,
               flip_perm, size: tuple[int, int], sigma: float, epoch: int | None = None, flip: bool = False,
               rotations=None, flipped=None) -> dict[str, Tensor]:
    """A batch's controlled Y0 as the cache names it: `heatmaps`, and `flip/heatmaps` with `flip`.

    joints (B, K, 3) the cached ground truth in heatmap px; ann_ids, centers, scales (+ rotations,
    flipped for augmented views) the cached meta; `epoch` None for an evaluation split's fixed draws."""
    others, area = context(ann_ids, centers, scales, size, rotations, flipped)
    u = instance_uniforms(ann_ids, p.seed, joints.shape[1], epoch)
    pos, drawn, _ = perturb(joints, others, area, u, p, sigmas, flip_perm, size)
    out = {"heatmaps": render_y0(pos, drawn, size, sigma)}
    if flip:
        out["flip/heatmaps"] = render_y0(pos, drawn, size, sigma, flip_perm)
    return out
