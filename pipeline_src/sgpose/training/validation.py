"""The refiner's validation AP during training: every `train_refiner.val_every` epochs (and at the last) the
UNet being trained is run over the val cache exactly as `sgpose infer` runs it (the reading `infer.mode`,
the flip test, `infer.decode`) and scored as `sgpose evaluate` scores it. The AP goes into the training log
(`val_ap`), so a reader of the report sees whether a refiner is still learning or at its ceiling (the copy
score: `sgpose.core.variants`). A monitor, never a selection: the weights kept are the last epoch's.
"""

from __future__ import annotations

import logging

import torch

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.core.keypoints import get_layout
from sgpose.core.variants import decode_mode
from sgpose.evaluation.coco_eval import evaluate_keypoints
from sgpose.inference.cached import Refiner, Setting, split_results
from sgpose.method.refine import GuidanceSpec
from sgpose.method.unet import StructureGuidedUNet

log = logging.getLogger(__name__)
SPLIT = "val"


class Validation:
    """Scores one variant's refiner on the val split at the epochs `train_refiner.val_every` names."""

    def __init__(self, params: Params, paths: Paths, variant: str, dev: torch.device):
        self.every, self.epochs = params.train_refiner.val_every, params.train_refiner.epochs
        self.cache, self.truth = paths.cache(SPLIT), paths.split_annotations(SPLIT)
        self.setting = Setting.of(params, dev)
        self.decode = decode_mode(variant, params.infer.decode)
        layout = get_layout(params.layout)
        self.sigmas, self.crowdpose, self.backend = layout.sigmas, layout.name == "crowdpose", params.evaluate.backend
        if self.every and SPLIT not in params.splits:
            log.info("no %s cache for backbone %s (scored online): no validation AP during training", SPLIT,
                     params.backbone.name)
            self.every = 0

    def due(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based) is scored: every `val_every`-th, and the last."""
        return bool(self.every) and (epoch % self.every == 0 or epoch == self.epochs)

    def ap(self, unet: StructureGuidedUNet, spec: GuidanceSpec) -> float:
        """The val AP of the UNet as it stands (left in train mode afterwards)."""
        unet.eval()
        try:
            results = split_results(self.cache, Refiner(unet, spec), self.setting, self.decode)
        finally:
            unet.train()
        metrics = evaluate_keypoints(self.truth, results, self.sigmas, self.backend, self.crowdpose)
        return float(metrics["AP"])
