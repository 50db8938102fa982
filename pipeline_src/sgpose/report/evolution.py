"""What Figs. 7-16 show, computed: the backbone's and the refiner's decoding of every cached val
sample, the refiner's heatmaps at every step for a few samples, and which joints and instances
are worth drawing (largest correction, a recovered joint, lowest backbone OKS).

Batched over samples and joints; the only loops are over cache batches and the (sequential)
refinement steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import torch
from torch import Tensor

from sgpose.core.modes import DecodeMode
from sgpose.data.decoding import decode
from sgpose.method.refine import GuidanceSpec, refine, refine_steps

META = ("center", "scale", "bbox", "image_id", "ann_id")


@dataclass
class Decoded:
    """Per cached sample (N, K): ground truth, backbone and refined joints in heatmap pixels, scores."""

    gt: np.ndarray  # (N, K, 2)
    vis: np.ndarray  # (N, K) > 0 where labelled
    base_xy: np.ndarray
    base_score: np.ndarray
    ref_xy: np.ndarray
    ref_score: np.ndarray
    meta: dict[str, np.ndarray]


def _feats(h5: h5py.File, sl: slice) -> list[Tensor]:
    n = len(h5["feat"])
    return [torch.from_numpy(h5[f"feat/{i}"][sl]).float() for i in range(n)]


def decode_val(h5: h5py.File, unet: torch.nn.Module, spec: GuidanceSpec, mode: str, batch: int = 64,
               decoder: DecodeMode | str = DecodeMode.STANDARD, sigma: float | None = None) -> Decoded:
    """Decode Y0 and the refined heatmaps (single view, inference reading `mode`) of every sample, both
    with `decoder` (`infer.decode`; dark needs the targets' `sigma`)."""
    n = len(h5["heatmaps"])
    parts: list[tuple[Tensor, ...]] = []
    for i in range(0, n, batch):
        sl = slice(i, i + batch)
        y0 = torch.from_numpy(h5["heatmaps"][sl]).float()
        refined = refine(unet, spec, _feats(h5, sl), y0, mode)
        parts.append((*decode(y0, decoder, sigma), *decode(refined, decoder, sigma)))
    cat = [torch.cat(p).numpy() for p in zip(*parts)] if parts else [np.zeros((0, 0, 2))] * 4
    joints = np.asarray(h5["joints"][()], dtype=np.float64)
    return Decoded(joints[..., :2], joints[..., 2], cat[0], cat[1], cat[2], cat[3],
                   {k: h5[f"meta/{k}"][()] for k in META})


@torch.no_grad()
def steps_for(h5: h5py.File, index: int, unet, spec: GuidanceSpec, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(Y0 (K, h, w), per-step refined heatmaps (T, K, h, w)) of one cached sample."""
    sl = slice(index, index + 1)
    y0 = torch.from_numpy(h5["heatmaps"][sl]).float()
    return y0[0].numpy(), refine_steps(unet, spec, _feats(h5, sl), y0, mode)[0].numpy()


def improvement(d: Decoded) -> np.ndarray:
    """Distance to ground truth of the backbone minus that of the refiner, (N, K), heatmap pixels."""
    return np.linalg.norm(d.base_xy - d.gt, axis=-1) - np.linalg.norm(d.ref_xy - d.gt, axis=-1)


def select_joint(d: Decoded, threshold: float, recovered: bool) -> tuple[int, int] | None:
    """The (sample, joint) to show, among labelled joints; None when there is none.

    corrected (`recovered` False): found by the backbone (max response > threshold), largest
    improvement in distance to ground truth (must be > 0). recovered: missed by the backbone and
    found by the refiner; the backbone has no position for it, so the one the refiner puts closest
    to ground truth.
    """
    found_base = d.base_score > threshold
    if recovered:
        mask = (d.vis > 0) & ~found_base & (d.ref_score > threshold)
        gain = np.where(mask, -np.linalg.norm(d.ref_xy - d.gt, axis=-1), -np.inf)
    else:
        gain = np.where((d.vis > 0) & found_base, improvement(d), -np.inf)
    if gain.size == 0 or not np.isfinite(gain.max()) or (not recovered and gain.max() <= 0):
        return None
    n, k = np.unravel_index(int(gain.argmax()), gain.shape)
    return int(n), int(k)


def oks(pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, area: np.ndarray, sigmas) -> np.ndarray:
    """Per-instance OKS (N,) of poses in image pixels; NaN for instances with no labelled joint.

    Used to rank instances for the qualitative grid (with the box area as the scale), not to score.
    """
    k2 = (2.0 * np.asarray(sigmas)) ** 2
    d2 = ((pred - gt) ** 2).sum(-1)
    e = d2 / (2.0 * np.maximum(area, 1.0)[:, None] * k2[None] + np.spacing(1))
    labelled = vis > 0
    count = labelled.sum(1)
    total = (np.exp(-e) * labelled).sum(1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def hardest(scores: np.ndarray, n: int, labelled: np.ndarray | None = None, min_labelled: int = 0) -> np.ndarray:
    """Indices of the `n` lowest scores, lowest first; NaN (unlabelled) excluded. Instances with at
    least `min_labelled` labelled joints come first, the others only if too few qualify."""
    valid = ~np.isnan(scores)
    rich = valid & (np.ones_like(valid) if labelled is None else np.asarray(labelled) >= min_labelled)
    key = np.where(valid, scores, np.inf) + np.where(rich, 0.0, 2.0)  # OKS <= 1: rich ones sort first
    order = np.argsort(key, kind="stable")
    return order[: min(n, int(valid.sum()))]
