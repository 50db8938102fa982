"""Inference (SPEC 5) over cached batches: the heatmaps to decode for a batch (the backbone's Y0 for the
baseline, else the variant's trained UNet run in the reading `infer.mode`), with the flip test, and
one split's COCO results.

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

import torch

from sgpose import compute
from sgpose.cache.format import has_flip
from sgpose.cache.reader import CacheBatches, batch_loader, features, open_cache, sequential_batches
from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.data.decoding import flip_back
from sgpose.evaluation.results import heatmap_results
from sgpose.keypoints import get_layout
from sgpose.modes import DecodeMode, InferenceMode
from sgpose.refine import GuidanceSpec, guidance_spec, refine
from sgpose.refiner import load_refiner
from sgpose.variants import is_refined

log = logging.getLogger(__name__)
META = ("meta/center", "meta/scale", "meta/image_id", "meta/score")


def view_heatmaps(params: Params, batch: dict[str, torch.Tensor], prefix: str, unet=None,
                  spec: GuidanceSpec | None = None, dev: torch.device = torch.device("cpu")) -> torch.Tensor:
    """One view's final heatmaps (`prefix` '' or 'flip/') on the CPU: Y0 for the baseline, else refined."""
    y0 = batch[f"{prefix}heatmaps"]
    if unet is None:
        return y0.float()
    cp = params.compute
    feats = [compute.to_device(f, cp, dev) for f in features(batch, prefix)]
    with compute.inference(cp, dev):
        out = refine(unet, spec, feats, compute.to_device(y0, cp, dev), params.infer.mode)
    return out.float().cpu()


def final_heatmaps(params: Params, batch: dict[str, torch.Tensor], unet=None, spec: GuidanceSpec | None = None,
                   dev: torch.device = torch.device("cpu")) -> torch.Tensor:
    """The heatmaps to decode for a batch: one view, or the average with the mirrored view mapped back."""
    out = view_heatmaps(params, batch, "", unet, spec, dev)
    if not params.infer.flip_test or "flip/heatmaps" not in batch:
        return out
    flipped = view_heatmaps(params, batch, "flip/", unet, spec, dev)
    return 0.5 * (out + flip_back(flipped, get_layout(params.layout).flip_permutation()))


def refiner_for(params: Params, paths: Paths, variant: str, dev: torch.device):
    """(UNet on the device, its guidance spec), or (None, None) for an unrefined variant (baseline*)."""
    if not is_refined(variant):
        return None, None
    unet = compute.prepare_model(load_refiner(paths.refiner(variant), params, variant), params.compute, dev)
    spec = guidance_spec(params, variant, paths.start_pose)
    mode = params.infer.mode
    if spec.T == 1 or (mode == InferenceMode.STATIC and not spec.prev_heatmap):
        log.info("%s %s inference: only step t=T-1=%d affects the output; the other steps are skipped",
                 variant, mode if spec.T > 1 else "single-step", spec.T - 1)
    return unet, spec


def split_results(params: Params, paths: Paths, split: str, unet=None, spec: GuidanceSpec | None = None,
                  dev: torch.device = torch.device("cpu"), mode: DecodeMode | str | None = None) -> list[dict]:
    """COCO results of every cached sample of one split, decoded batch by batch (`mode`: the decoder,
    default `infer.decode`)."""
    mode = mode or params.infer.decode
    path = paths.cache(split)
    with open_cache(path) as h5:
        flip = params.infer.flip_test and has_flip(h5)
    if params.infer.flip_test and not flip:
        log.warning("%s: infer.flip_test is on but the cache has no flip/*: single view", path)
    prefixes = () if unet is None else ("", "flip/") if flip else ("",)
    data = CacheBatches(path, keys=["heatmaps", *(["flip/heatmaps"] if flip else []), *META], prefixes=prefixes)
    results = []
    for batch in batch_loader(data, sequential_batches(len(data), params.infer.batch_size), pin_memory=dev.type == "cuda"):
        results += heatmap_results(final_heatmaps(params, batch, unet, spec, dev).cpu(), batch["meta/center"].numpy(),
                                   batch["meta/scale"].numpy(), batch["meta/image_id"].numpy(), batch["meta/score"].numpy(),
                                   mode, params.backbone.heatmap_sigma)
    return results
