"""Training (docs/method.md §4, Algorithm 1) and inference (docs/method.md §5) of the structure-guided refiner, for every
refined variant of sgpose.core.variants.

Pure functions over tensors: the stages in sgpose.stages own the files. Guidance is built batched
(no loop over samples, joints or steps); only the inherently sequential refinement steps loop.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sgpose.config.schema import GuidanceParams
from sgpose.config.selection import Params
from sgpose.core.keypoints import get_layout
from sgpose.core.modes import A2Map, InferenceMode, StartPose, TrainPath
from sgpose.core.variants import GuidanceKind, Variant, get_variant
from sgpose.data.decoding import predicted_pose
from sgpose.data.targets import render_gaussians
from sgpose.method import guidance
from sgpose.method.unet import StructureGuidedUNet
from sgpose.models.losses import joints_mse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuidanceSpec:
    """What builds the UNet's guidance input for one variant: the guidance params, the variant, the
    start pose (K, 2), the map geometry, the (T, S) step weights and the previous-heatmap switch; `alpha`,
    the schedule's alphas, when `to` put them on a device (else computed per call, on the CPU); `spans`,
    per step t the range [lo, hi) of maps s outside which w(t, s) is zero (filled in from `weights`: the only
    maps H(t) depends on, known on the host so that a reading on a device never asks it)."""

    params: GuidanceParams
    variant: Variant
    start: Tensor
    sigma: float
    size: tuple[int, int]
    weights: Tensor
    prev_heatmap: bool = False
    alpha: Tensor | None = None
    spans: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.spans:
            nonzero = [[s for s, w in enumerate(row) if w != 0] for row in self.weights.tolist()]
            object.__setattr__(self, "spans", tuple((s[0], s[-1] + 1) if s else (0, 0) for s in nonzero))

    def to(self, device: torch.device) -> GuidanceSpec:
        """The spec with its tensors on `device` (float32: the values the guidance converts them to anyway),
        so that building the guidance copies nothing from the host (a CUDA graph captures no such copy)."""
        f32 = dict(device=device, dtype=torch.float32)
        alpha = guidance.alphas(self.params.S, self.params.schedule)
        return dataclasses.replace(self, start=self.start.to(**f32), weights=self.weights.to(**f32), alpha=alpha.to(**f32))

    @property
    def T(self) -> int:
        """Number of refinement steps of this variant."""
        return self.weights.shape[0]

    @property
    def in_channels(self) -> int:
        """Maps concatenated with F_0 at the UNet input (`input_channels`)."""
        return input_channels(self.start.shape[0], self.variant, self.prev_heatmap)

    def maps(self, pose: Tensor, span: tuple[int, int] | None = None) -> Tensor:
        """G^0..G^{S-1} (B, S, K, h, w) from P_start to `pose` (B, K, 2) (docs/method.md §2); `span` (lo, hi):
        only G^lo..G^{hi-1} (the poses interpolated as for all S: the same maps)."""
        p = self.params
        if self.alpha is None and span is None:
            return guidance.guidance_maps(self.start, pose, p.S, p.schedule, self.sigma, self.size, p.missing)
        alpha = guidance.alphas(p.S, p.schedule) if self.alpha is None else self.alpha
        poses, present = guidance.interpolate(self.start, pose, alpha, p.missing)
        if span is not None:
            poses, present = poses[:, span[0]:span[1]], present[:, span[0]:span[1]]
        return render_gaussians(poses, self.size, self.sigma, present)

    def at(self, pose: Tensor, y0: Tensor, t: Tensor) -> Tensor:
        """The guidance H(t_b) (B, C, h, w) for the path P_start -> pose; C = 0 for no guidance."""
        if self.variant.guidance == GuidanceKind.NONE:
            return y0.new_zeros(y0.shape[0], 0, *y0.shape[-2:])
        if self.variant.guidance == GuidanceKind.PREDICTION and self.params.a2_map == A2Map.RAW:
            return y0
        return guidance.fuse_at(self.maps(pose), self.weights, t)

    def pred(self, heatmaps: Tensor) -> Tensor:
        """P_pred (B, K, 2) of heatmaps: each joint decoded as `guidance.pred_decode` says, (0, 0) where its
        maximum is at most `guidance.pred_threshold` (missing; docs/method.md §2)."""
        p = self.params
        return predicted_pose(heatmaps, p.pred_threshold, p.pred_decode, self.sigma)

    def inputs(self, pose: Tensor, y0: Tensor, t: Tensor) -> Tensor:
        """The maps fed beside F_0 at steps t (B,) for the path P_start -> pose: H(t), then, when that input
        is on (`refiner.prev_heatmap`), the backbone's Y0 as the previous step's heatmap. Training and
        every inference reading build the UNet's input here, so inference feeds what training fed."""
        H = self.at(pose, y0, t)
        return torch.cat([H, y0], dim=1) if self.prev_heatmap else H

    def at_step(self, pose: Tensor, y0: Tensor, step: int) -> Tensor:
        """H(step) for every sample, as `at` with t = step, rendering only the maps of non-zero weight:
        the others add w G = 0 to a max of non-negative terms, so the result is `at`'s to the bit. The
        static reading needs one map of S (every kind's last row is one-hot)."""
        if self.variant.guidance == GuidanceKind.NONE or (
                self.variant.guidance == GuidanceKind.PREDICTION and self.params.a2_map == A2Map.RAW):
            return self.at(pose, y0, torch.full((y0.shape[0],), step, dtype=torch.long, device=y0.device))
        lo, hi = self.spans[step]
        if lo == hi:  # an all-zero row (S = 2's interior steps): H = 0
            return torch.zeros(pose.shape[0], pose.shape[1], *self.size, device=pose.device)
        G = self.maps(pose, (lo, hi))  # (B, hi - lo, K, h, w)
        w = self.weights[step, lo:hi].to(G)[None, :, None, None, None]
        return (w * G).amax(dim=1)

    def inputs_at(self, pose: Tensor, y0: Tensor, step: int) -> Tensor:
        """`inputs` with t = step for every sample, H(step) rendered by `at_step` (only its non-zero maps):
        the same tensor, to the bit. The inference readings build the UNet's input here."""
        H = self.at_step(pose, y0, step)
        return torch.cat([H, y0], dim=1) if self.prev_heatmap else H


def gt_pose(joints: Tensor) -> Tensor:
    """Ground-truth pose (B, K, 2) from cached joints (B, K, 3); unlabelled joints -> (0, 0) (missing)."""
    return joints[..., :2] * (joints[..., 2:3] > 0)


def draw_steps(spec: GuidanceSpec, n: int, generator: torch.Generator | None = None,
               p_last: float | None = None) -> Tensor:
    """The training steps t, one per sample (on the CPU: one seeded generator serves every device).

    `p_last` None: Algorithm 1's t ~ U{0..T-1}. Else t = T-1 (the step the static reading runs) with
    probability p_last, t ~ U{0..T-2} otherwise (`train_refiner.p_last`; docs/paper_notes.md)."""
    if p_last is None or spec.T == 1:
        return torch.randint(0, spec.T, (n,), generator=generator)
    last = torch.rand(n, generator=generator) < p_last
    return torch.where(last, spec.T - 1, torch.randint(0, spec.T - 1, (n,), generator=generator))


def training_loss(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor,
                  target: Tensor, weight: Tensor, t: Tensor, joints: Tensor | None = None) -> Tensor:
    """Algorithm 1 for steps t (B,) (`draw_steps`): build H(t) along the variant's training path,
    regress the ground-truth heatmaps with the visibility-weighted MSE.

    The path ends at the backbone's prediction ("path consistency"), or at ground truth for A4
    (`joints` needed). With the previous-heatmap input the previous heatmap is Y0 (`GuidanceSpec.inputs`).
    """
    if spec.variant.train_path == TrainPath.GT:
        if joints is None:
            raise ValueError(f"variant {spec.variant.name} trains on ground-truth paths: pass joints")
        pose = gt_pose(joints.float())
    else:
        pose = spec.pred(y0)
    t = t.to(y0.device)
    return joints_mse(unet(feats, spec.inputs(pose, y0, t), t), target, weight)


@torch.no_grad()
def refine_static(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor) -> Tensor:
    """docs/method.md §5 `static`: {H(t)} built once from P_start -> P_pred, UNet run per step, last output kept.

    The steps do not feed each other (the previous-heatmap input, when on, is Y0 at every step, as in
    training), so only the last step t = T-1 can change the result: the other T-1 UNet calls are skipped.
    """
    t = torch.full((y0.shape[0],), spec.T - 1, dtype=torch.long, device=y0.device)
    return unet(feats, spec.inputs_at(spec.pred(y0), y0, spec.T - 1), t)


def guided_steps(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor,
                 mode: InferenceMode) -> Iterator[tuple[Tensor, Tensor]]:
    """Each step's (UNet input maps, UNet output (B, K, h, w)), t = 0..T-1, in one docs/method.md §5 reading. Every
    call's input is `spec.inputs(P(t), Y0, t)`: what training builds for a path ending at P(t) (docs/paper_notes.md);
    its first channels are the guidance H(t)."""
    if mode not in set(InferenceMode):
        raise ValueError(f"unknown inference mode {mode!r}; expected one of {', '.join(InferenceMode)}")
    pred = spec.pred(y0)
    pose = spec.start.to(pred).expand_as(pred) if mode == InferenceMode.RECURSIVE else pred
    for step in range(spec.T):
        t = torch.full((y0.shape[0],), step, dtype=torch.long, device=y0.device)
        maps = spec.inputs_at(pose, y0, step)
        out = unet(feats, maps, t)
        if mode != InferenceMode.STATIC:
            pose = spec.pred(out)
        yield maps, out


def _steps(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor, mode: InferenceMode) -> Iterator[Tensor]:
    """Each step's UNet output (B, K, h, w), t = 0..T-1, in one docs/method.md §5 reading (`guided_steps`)."""
    return (out for _, out in guided_steps(unet, spec, feats, y0, mode))


@torch.no_grad()
def refine(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor,
           mode: InferenceMode = InferenceMode.STATIC) -> Tensor:
    """The final heatmaps (B, K, h, w) of one docs/method.md §5 reading, batched over samples:

    static               H from P_start -> P_pred once; only the last step's output matters
    recursive            P(0) = P_start; step t: H(t) of the path P_start -> P(t), UNet, P(t+1) = decode
    recursive_from_pred  the same with P(0) = P_pred
    """
    if mode == InferenceMode.STATIC:
        return refine_static(unet, spec, feats, y0)
    out = y0
    for out in _steps(unet, spec, feats, y0, mode):
        pass
    return out


@torch.no_grad()
def refine_steps(unet: StructureGuidedUNet, spec: GuidanceSpec, feats: list[Tensor], y0: Tensor,
                 mode: InferenceMode = InferenceMode.STATIC) -> Tensor:
    """Every step's output (B, T, K, h, w) of one reading: the heatmap evolution of Figs. 7-8."""
    return torch.stack(list(_steps(unet, spec, feats, y0, mode)), dim=1)


def load_start_pose(path: Path, layout: str, size: tuple[int, int]) -> Tensor:
    """The `start_pose` stage's mean pose (K, 2); errors name the file when missing or mismatched."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no mean start pose (run `sgpose start_pose`, "
                                "needed by guidance.start_pose: mean)")
    data = json.loads(path.read_text())
    if data.get("layout") != layout or tuple(data.get("heatmap_size", ())) != tuple(size):
        raise ValueError(f"{path}: start pose for layout {data.get('layout')} at {data.get('heatmap_size')}, "
                         f"expected {layout} at {list(size)}; rerun `sgpose start_pose`")
    return torch.tensor(data["pose"], dtype=torch.float32)


def guidance_spec(params: Params, variant: str = "ours", start_pose_path: Path | None = None) -> GuidanceSpec:
    """The guidance of one variant for a params file: start pose (canonical, or the mean training
    pose read from `start_pose_path`), sigma scaled to the heatmap, the variant's step weights."""
    size = tuple(params.backbone.heatmap_size)
    v = get_variant(variant)
    gp = params.guidance.for_variant(v)
    if gp.start_pose == StartPose.MEAN:
        if start_pose_path is None:
            raise ValueError("guidance.start_pose is mean but no start_pose.json path was given")
        start = load_start_pose(Path(start_pose_path), params.layout, size)
    else:
        start = torch.from_numpy(get_layout(params.layout).canonical_pose(size))
    weights = guidance.step_weights(v.guidance, gp.S, gp.a3_steps)
    return GuidanceSpec(gp, v, start, params.backbone.heatmap_sigma, size, weights, params.refiner.prev_heatmap)


def input_channels(num_joints: int, variant: Variant, prev_heatmap: bool) -> int:
    """Maps concatenated with F_0 at the UNet input (docs/method.md §3): the guidance map (K, none for A1) and
    the previous step's heatmap (K, with refiner.prev_heatmap)."""
    return num_joints * (variant.guidance != GuidanceKind.NONE) + num_joints * prev_heatmap
