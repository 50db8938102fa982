"""Refiner training batches of a controlled backbone (sgpose.controlled.y0): the train cache's
features and targets, with Y0 (and the features' evidence) drawn afresh every epoch from the cached ground
truth."""

from __future__ import annotations

from typing import Iterator

import torch

from sgpose.cache.reader import TRAIN_KEYS
from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.controlled.y0 import ControlledY0
from sgpose.data.coco import read_instances
from sgpose.training.sources import CachedSource, trunk_head

META_KEYS = ("meta/ann_id", "meta/center", "meta/scale")  # + meta/rotation, meta/flipped with train_views > 1


class ControlledSource(CachedSource):
    """Training batches of a controlled backbone: the train cache's features and targets, with Y0
    drawn afresh for every epoch from its ground truth `joints` (sgpose.controlled.perturb)."""

    def __init__(self, params: Params, paths: Paths, dev: torch.device):
        path = paths.cache("train")
        views = params.cache.train_views > 1
        super().__init__(path, params.train_refiner, dev, keys=(*TRAIN_KEYS, *META_KEYS,
                                                  *(("meta/rotation", "meta/flipped") if views else ())),
                         head=trunk_head(params, paths, dev))
        self.y0 = ControlledY0(params, read_instances(paths.instances("train")))

    def batches(self, batches: list[list[int]], epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        for batch in super().batches(batches, epoch):
            meta = {k.removeprefix("meta/"): v for k, v in batch.items() if k.startswith("meta/")}
            out = {k: v for k, v in batch.items() if not k.startswith("meta/")}
            yield out | self.y0(batch["joints"], meta, epoch=epoch) | self.y0.features(out, batch["joints"], meta,
                                                                                      epoch=epoch)

