"""A SimpleBaseline's frozen deconv head, rerun on the device over a train cache that stores the trunk's
map instead of the head's outputs (`cache.store: trunk`; docs/scale.md, "Bytes per sample").

The three deconv outputs of SimpleBaseline-R50 are 2.06 MB of each cached sample in fp16; the C5 map they
are computed from (2048 x 8 x 6) is 0.2 MB, and the head (three 4x4 transposed convolutions) costs a GPU
about a fifth of the backbone's forward, once per sample and epoch, beside a refiner step that costs more.
`TrunkHead.expand` turns a batch read from such a cache into the batch a head cache gives (`feat/0..`),
on the device: the numbers are the head's on the stored trunk, so they differ from a head cache's by the
rounding of the trunk's storage instead of the features' (tests/cache/test_head.py bounds it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sgpose.config.schema import BackboneParams, ComputeParams
from sgpose.models.backbones import features_of_trunk
from sgpose.models.checkpoints import backbone_source_sha256, load_backbone
from sgpose.runtime import compute

Batch = dict[str, torch.Tensor]


class TrunkHead:
    """The head of `model` on `dev`, giving the feature levels `levels` (all: None) of a cached trunk."""

    def __init__(self, model: nn.Module, levels: list[int] | None, cp: ComputeParams, dev: torch.device):
        self.model, self.levels, self.cp, self.dev = model, levels, cp, dev
        for part in (model.deconv_layers, model.final_layer):  # the trunk's body stays where it is: unused
            compute.prepare_model(part, cp, dev)

    @classmethod
    def load(cls, weights: Path, bp: BackboneParams, num_joints: int, attrs: dict, cp: ComputeParams,
             dev: torch.device) -> TrunkHead:
        """The head of the backbone.pt the cache was made with (its `checkpoint_sha256`): any other is an
        error naming both, never features of other weights."""
        if backbone_source_sha256(weights) != attrs.get("checkpoint_sha256"):
            raise ValueError(f"{weights}: not the backbone the train cache's trunk was computed with (its "
                             "checkpoint_sha256 differs); rerun `sgpose cache --split train`")
        levels = (attrs.get("cache") or {}).get("feature_levels")
        return cls(load_backbone(weights, bp, num_joints), levels, cp, dev)

    def expand(self, batch: Batch) -> Batch:
        """`batch` with `trunk` replaced by the head's `feat/0..` on the device (float32, as `compute.to_device`
        makes the cache's fp16 features), the other keys as they were."""
        out = dict(batch)
        trunk = compute.to_device(out.pop("trunk"), self.cp, self.dev)
        with compute.inference(self.cp, self.dev):
            feats = features_of_trunk(self.model, trunk, self.levels)
        return out | {f"feat/{i}": f for i, f in enumerate(feats)}
