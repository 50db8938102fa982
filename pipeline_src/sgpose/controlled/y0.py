"""The files side of controlled backbones (`backbones.<name>.arch: oracle | perturbed`, sgpose.controlled.perturb;
with `evidence`, sgpose.controlled.evidence).

A controlled backbone has no weights: its `cache` stage runs `features_from`'s backbone.pt for the
features and replaces Y0 (`heatmaps`, `flip/heatmaps`) by the ground truth rendered with the fixed
draws (seed, ann_id); refiner training reads the same cache through
`sgpose.controlled.source.ControlledSource`, which draws Y0 afresh every epoch (seed, epoch,
ann_id) from the cached ground truth `joints`.
"""

from __future__ import annotations

import pandas as pd
import torch

from sgpose.config.selection import Params
from sgpose.controlled import evidence
from sgpose.controlled.perturb import CropContext, perturb_params, synthesise
from sgpose.core.keypoints import get_layout


class ControlledY0:
    """What a controlled backbone renders for batches of one split, from its instance table: Y0 (the ground
    truth with its synthetic errors) and, with `backbones.<name>.evidence`, the features with synthetic
    evidence of the pose mixed in (`sgpose.controlled.evidence`)."""

    def __init__(self, params: Params, rows: pd.DataFrame, evidence: bool = True):
        """`evidence` False: Y0 only (the train split's cache keeps the clean features; training mixes fresh
        evidence into them every epoch)."""
        bp, self.layout = params.backbone, get_layout(params.layout)
        self.p = perturb_params(bp.arch, bp.perturb)
        self.evidence = bp.evidence if evidence else None
        self.size, self.sigma = tuple(bp.heatmap_size), bp.heatmap_sigma
        self.context = CropContext(rows, self.layout.flip_permutation())

    def __call__(self, joints: torch.Tensor, meta: dict[str, torch.Tensor], flip: bool = False,
                 epoch: int | None = None) -> dict[str, torch.Tensor]:
        """`heatmaps` (and `flip/heatmaps`) for ground truth `joints` (B, K, 3) and the crops' `meta`
        (ann_id, center, scale, and rotation / flipped when present), keyed without the `meta/` prefix."""
        return synthesise(joints.float(), *self._meta(meta), self.context, self.p, self.layout.sigmas,
                          self.layout.flip_permutation(), self.size, self.sigma, epoch, flip,
                          rotations=_get(meta, "rotation"), flipped=_get(meta, "flipped"))

    def _meta(self, meta: dict[str, torch.Tensor]) -> tuple:
        return _get(meta, "ann_id"), _get(meta, "center"), _get(meta, "scale")

    def features(self, batch: dict[str, torch.Tensor], joints: torch.Tensor, meta: dict[str, torch.Tensor],
                 prefixes: tuple[str, ...] = ("",), epoch: int | None = None) -> dict[str, torch.Tensor]:
        """`{prefix}feat/l` of `batch` with the evidence mixed in, for each view of `prefixes` ('' plain,
        'flip/' mirrored); nothing without `evidence`."""
        if self.evidence is None:
            return {}
        ann, centers, scales = self._meta(meta)
        _, area = self.context(ann, centers, scales, self.size, _get(meta, "rotation"), _get(meta, "flipped"))
        out = {}
        for prefix in prefixes:
            keys = sorted((k for k in batch if k.startswith(f"{prefix}feat/")), key=lambda k: int(k.rsplit("/", 1)[1]))
            feats = [batch[k] for k in keys]
            evidence.check_channels(self.evidence, [f.shape[1] for f in feats], self.layout.num_joints,
                                    self.layout.flip_permutation())
            u, noise = evidence.draws(ann, self.evidence, [tuple(f.shape[-2:]) for f in feats], epoch)
            perm = self.layout.flip_permutation() if prefix else None
            maps = evidence.evidence_maps(joints.float(), area, u, noise, self.evidence, self.sigma, self.layout.sigmas,
                                          perm)
            out |= dict(zip(keys, evidence.mix(feats, maps, self.evidence)))
        return out

    def for_crops(self, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor], flip: bool) -> dict[str, torch.Tensor]:
        """What the cache stage stores of a CropDataset batch instead of the backbone's outputs: the
        fixed-draw Y0 and, with evidence, the features with the fixed-draw evidence."""
        views = ("", "flip/") if flip else ("",)
        return self(batch["joints"], batch, flip) | self.features(outputs, batch["joints"], batch, views)


def _get(meta: dict[str, torch.Tensor], key: str):
    return meta[key].numpy() if key in meta else None
