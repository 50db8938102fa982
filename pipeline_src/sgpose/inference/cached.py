"""Inference (docs/method.md, "Inference") over cached batches: the heatmaps to decode for a batch (the
backbone's Y0 for the baseline, else the variant's trained UNet run in the reading `infer.mode`), with the
flip test, and one split's COCO results.

`baseline` decodes the backbone's own heatmaps Y0 (same decoding, same evaluation) and
`baseline_dark` the same with DARK whatever `infer.decode` says; a refined variant runs its trained
UNet over the cached features first. Every final heatmap is decoded as `variants.decode_mode` says
(`infer.decode`: standard | dark; `sgpose.data.decoding`). With `infer.flip_test` and a cache
holding `flip/*`, each view is refined with its own features and Y0 and the mirrored view is mapped
back (`flip_back`) and averaged with the original. The cache is read batch by batch (never whole:
full COCO's detection-box val cache is hundreds of GB) and each batch is decoded at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from sgpose.cache.format import has_flip
from sgpose.cache.reader import CacheBatches, batch_loader, features, open_cache, sequential_batches
from sgpose.config.paths import Paths
from sgpose.config.schema import ComputeParams, InferParams
from sgpose.config.selection import Params
from sgpose.core.keypoints import get_layout
from sgpose.core.modes import DecodeMode, InferenceMode
from sgpose.core.variants import Readout, is_refined, readout
from sgpose.data.decoding import flip_back
from sgpose.evaluation.results import heatmap_results
from sgpose.inference.reading import Reading, Setup
from sgpose.method.refine import GuidanceSpec, guidance_spec, refine
from sgpose.method.refiner import load_refiner
from sgpose.method.unet import StructureGuidedUNet
from sgpose.runtime import compute

log = logging.getLogger(__name__)
META = ("meta/center", "meta/scale", "meta/image_id", "meta/score")
CPU = torch.device("cpu")


class Refiner(NamedTuple):
    """A trained refiner ready to run: the UNet and its variant's guidance, and `run`, the reading as the
    `compute` section runs it (`sgpose.inference.reading`; None: `refine` under autocast, on the UNet's device)."""

    unet: StructureGuidedUNet
    spec: GuidanceSpec
    run: Reading | None = None


class Copy(NamedTuple):
    """The `copy` readout: the last guidance map H(T-1) of `ours` (the rendered P_pred), a refiner that
    returns its input."""

    spec: GuidanceSpec


class Oracle(NamedTuple):
    """The `oracle` readout: the training targets (the cache's `target`), a perfect refiner."""


Source = Refiner | Copy | Oracle | None  # what a variant's heatmaps are made of (None: the backbone's Y0)


@dataclass(frozen=True)
class Setting:
    """What inference reads of the parameters: the `infer` and `compute` sections, the layout's flip
    permutation, the targets' sigma (DARK) and the device."""

    infer: InferParams
    compute: ComputeParams
    flip_perm: np.ndarray
    sigma: float
    device: torch.device = CPU

    @classmethod
    def of(cls, params: Params, dev: torch.device = CPU) -> Setting:
        return cls(params.infer, params.compute, get_layout(params.layout).flip_permutation(),
                   params.backbone.heatmap_sigma, dev)


def view_heatmaps(batch: dict[str, torch.Tensor], prefix: str, refiner: Source, cp: ComputeParams,
                  mode: InferenceMode, dev: torch.device = CPU) -> torch.Tensor:
    """One view's final heatmaps (`prefix` '' or 'flip/') on the CPU: Y0 for the baseline, the guidance's last
    map for the copy, the targets for the oracle, else refined."""
    if isinstance(refiner, Oracle):
        return batch[f"{prefix}target"].float()
    y0 = batch[f"{prefix}heatmaps"]
    if refiner is None:
        return y0.float()
    if isinstance(refiner, Copy):
        spec, y0 = refiner.spec, y0.float()
        return spec.at(spec.pred(y0), y0, torch.full((len(y0),), spec.T - 1, dtype=torch.long)).float()
    if refiner.run is not None:
        return refiner.run(features(batch, prefix), y0).float().cpu()
    feats = [compute.to_device(f, cp, dev) for f in features(batch, prefix)]
    with compute.inference(cp, dev):
        out = refine(refiner.unet, refiner.spec, feats, compute.to_device(y0, cp, dev), mode)
    return out.float().cpu()


def final_heatmaps(batch: dict[str, torch.Tensor], refiner: Source, s: Setting) -> torch.Tensor:
    """The heatmaps to decode for a batch: one view, or the average with the mirrored view mapped back (the
    oracle: one view, the targets have no mirrored view)."""
    out = view_heatmaps(batch, "", refiner, s.compute, s.infer.mode, s.device)
    if not s.infer.flip_test or "flip/heatmaps" not in batch or isinstance(refiner, Oracle):
        return out
    flipped = view_heatmaps(batch, "flip/", refiner, s.compute, s.infer.mode, s.device)
    return 0.5 * (out + flip_back(flipped, s.flip_perm))


def refiner_for(params: Params, paths: Paths, variant: str, dev: torch.device) -> Source:
    """What a variant's heatmaps are made of: its trained refiner on the device, or the readout of an unrefined
    variant (None: the backbone's Y0; `Copy`: `ours`' guidance; `Oracle`: the targets)."""
    if not is_refined(variant):
        kind = readout(variant)
        if kind == Readout.GUIDANCE:
            return Copy(guidance_spec(params, "ours", paths.start_pose))
        return Oracle() if kind == Readout.TARGET else None
    unet = load_refiner(paths.refiner(variant), params.refiner, get_layout(params.layout).num_joints, variant)
    spec = guidance_spec(params, variant, paths.start_pose)
    mode = params.infer.mode
    if spec.T == 1 or mode == InferenceMode.STATIC:
        log.info("%s %s inference: only step t=T-1=%d affects the output; the other steps are skipped",
                 variant, mode if spec.T > 1 else "single-step", spec.T - 1)
    return Refiner(unet, spec, Reading(unet, spec, mode, dev, Setup.of(params.compute, dev, params.infer.batch_size)))


def split_results(path: Path, refiner: Source, s: Setting, mode: DecodeMode | str | None = None) -> list[dict]:
    """COCO results of every sample of the cache at `path`, decoded batch by batch (`mode`: the decoder,
    default `infer.decode`)."""
    mode = mode or s.infer.decode
    with open_cache(path) as h5:
        flip = s.infer.flip_test and has_flip(h5)
    if s.infer.flip_test and not flip:
        log.warning("%s: infer.flip_test is on but the cache has no flip/*: single view", path)
    if isinstance(refiner, Oracle):  # the targets: one view
        keys, prefixes = ["target"], ()
    else:
        keys = ["heatmaps", *(["flip/heatmaps"] if flip else [])]
        prefixes = ("", "flip/") if flip and isinstance(refiner, Refiner) else ("",) if isinstance(refiner, Refiner) else ()
    data = CacheBatches(path, keys=[*keys, *META], prefixes=prefixes)
    results = []
    pin = s.device.type == "cuda"
    for batch in batch_loader(data, sequential_batches(len(data), s.infer.batch_size), pin_memory=pin):
        results += heatmap_results(final_heatmaps(batch, refiner, s).cpu(), batch["meta/center"].numpy(),
                                   batch["meta/scale"].numpy(), batch["meta/image_id"].numpy(), batch["meta/score"].numpy(),
                                   mode, s.sigma)
    return results
