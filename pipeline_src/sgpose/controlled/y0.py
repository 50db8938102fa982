"""The files side of controlled backbones (`backbones.<name>.arch: oracle | perturbed`, sgpose.controlled.perturb).

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
from sgpose.controlled.perturb import CropContext, perturb_params, synthesise
from sgpose.core.keypoints import get_layout


class ControlledY0:
    """Y0 of a controlled backbone for batches of one split, from its instance table."""

    def __init__(self, params: Params, rows: pd.DataFrame):
        bp, self.layout = params.backbone, get_layout(params.layout)
        self.p = perturb_params(bp.arch, bp.perturb)
        self.size, self.sigma = tuple(bp.heatmap_size), bp.heatmap_sigma
        self.context = CropContext(rows, self.layout.flip_permutation())

    def __call__(self, joints: torch.Tensor, meta: dict[str, torch.Tensor], flip: bool = False,
                 epoch: int | None = None) -> dict[str, torch.Tensor]:
        """`heatmaps` (and `flip/heatmaps`) for ground truth `joints` (B, K, 3) and the crops' `meta`
        (ann_id, center, scale, and rotation / flipped when present), keyed without the `meta/` prefix."""
        def get(key):
            return meta[key].numpy() if key in meta else None

        return synthesise(joints.float(), get("ann_id"), get("center"), get("scale"), self.context, self.p,
                          self.layout.sigmas, self.layout.flip_permutation(), self.size, self.sigma, epoch, flip,
                          rotations=get("rotation"), flipped=get("flipped"))

    def for_crops(self, batch: dict[str, torch.Tensor], flip: bool) -> dict[str, torch.Tensor]:
        """The fixed-draw Y0 of a CropDataset batch (what the cache stage stores)."""
        return self(batch["joints"], batch, flip)
