"""Evaluation splits scored without a feature cache (the `online` section; docs/scale.md).

A cache pays for the training split, read every epoch; an evaluation split is read once per variant
scored on it, and its cache (with the flip view) is the largest of all (COCO's ~104k detection boxes:
~460 GB for one SimpleBaseline). Here one streaming pass over the split's crops runs the frozen
backbone (and its flip view with `infer.flip_test`) batch by batch and hands the same outputs to
every variant scored on the split (baseline, baseline_dark, ours, the ablation's on val): one backbone forward per
crop, as the cache stage pays, and no disk. The batch is keyed like a cache batch (`heatmaps`,
`feat/i`, `flip/*`), so the heatmaps, the decoding and the results are the cached path's own; only
the cache's fp16 storage of the features and Y0 is missing (the predictions agree to its rounding).
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.core import variants
from sgpose.core.io import write_json
from sgpose.core.keypoints import get_layout
from sgpose.data.coco import read_instances
from sgpose.data.dataset import CropDataset
from sgpose.evaluation.results import heatmap_results
from sgpose.inference.cached import Refiner, Setting, Source, final_heatmaps, refiner_for
from sgpose.models.backbones import forward_views
from sgpose.models.checkpoints import load_backbone
from sgpose.runtime import compute

log = logging.getLogger(__name__)
Refiners = dict[str, Source]  # variant -> what its heatmaps are made of (`inference.cached.refiner_for`)


def crops(params: Params, paths: Paths, split: str) -> CropDataset:
    """The split's plain crops, in instance order (the order the cache stage writes)."""
    bp = params.backbone
    return CropDataset(read_instances(paths.instances(split)), params.data.images_dir, bp.input_size, bp.heatmap_size,
                       bp.heatmap_sigma, get_layout(params.layout))


def check_levels(refiners: Refiners, paths: Paths, levels: list[int]) -> None:
    """Every refiner reads the feature levels computed here (`cache.feature_levels`): a refiner trained on
    other levels is an error naming its file."""
    for variant, refiner in refiners.items():
        if isinstance(refiner, Refiner) and refiner.unet.levels != levels:
            raise ValueError(f"{paths.refiner(variant)}: trained on feature levels {refiner.unet.levels}, the backbone's "
                             f"features here are levels {levels} (cache.feature_levels); retrain it")


def batch_predictions(outputs: dict[str, torch.Tensor], meta: dict[str, torch.Tensor], refiners: Refiners,
                      s: Setting) -> dict[str, list[dict]]:
    """Every variant's COCO results for one batch of backbone outputs (keyed like a cache batch) and the
    crops' meta (`center`, `scale`, `image_id`, `score`)."""
    center, scale = meta["center"].numpy(), meta["scale"].numpy()
    return {variant: heatmap_results(final_heatmaps(outputs, refiner, s).cpu(), center, scale,
                                     meta["image_id"].numpy(), meta["score"].numpy(),
                                     variants.decode_mode(variant, s.infer.decode), s.sigma)
            for variant, refiner in refiners.items()}


def split_predictions(params: Params, paths: Paths, split: str, model: torch.nn.Module, refiners: Refiners,
                      dev: torch.device) -> dict[str, list[dict]]:
    """One pass over the split's crops: the backbone (both views with `infer.flip_test`) once per batch of
    `infer.batch_size`, then every refiner; {variant: COCO results}."""
    cp, flip, levels = params.compute, params.infer.flip_test, params.cache.feature_levels
    loader = DataLoader(crops(params, paths, split), batch_size=params.infer.batch_size, shuffle=False,
                        num_workers=params.train_backbone.num_workers, pin_memory=dev.type == "cuda")
    results: dict[str, list[dict]] = {v: [] for v in refiners}
    setting = Setting.of(params, dev)
    for i, batch in enumerate(tqdm(loader, desc=f"online {split}", leave=False, dynamic_ncols=True)):
        with compute.inference(cp, dev):
            outputs = forward_views(model, compute.to_device(batch["image"], cp, dev), flip, levels)
        if i == 0:
            n = sum(k.startswith("feat/") for k in outputs)
            check_levels(refiners, paths, list(levels) if levels is not None else list(range(n)))
        for variant, rows in batch_predictions(outputs, batch, refiners, setting).items():
            results[variant] += rows
    return results


def write_predictions(params: Params, paths: Paths, dev: torch.device, splits: list[str] | None = None) -> list[str]:
    """`sgpose infer_online [--split S]`: the predictions file of every variant scored on each online split
    of the backbone (default all of them); returns the files written, each atomically when its split is done."""
    name = params.backbone.name
    wanted = splits or params.online
    bad = [s for s in wanted if s not in params.online]
    if bad:
        raise ValueError(f"--split {bad[0]}: backbone {name} scores {params.online or 'no split'} online "
                         f"(online.{name}); a cached split is `sgpose infer --variant V --split {bad[0]}`")
    if not wanted:
        log.info("backbone %s scores no split online (online.%s is empty)", name, name)
        return []
    model = compute.prepare_model(load_backbone(paths.backbone, params.backbone, get_layout(params.layout).num_joints),
                                  params.compute, dev).eval()
    written = []
    for split in wanted:
        refiners = {v: refiner_for(params, paths, v, dev) for v in params.online_variants(split)}
        for variant, results in split_predictions(params, paths, split, model, refiners, dev).items():
            write_json(paths.keypoints(variant, split), results, indent=None)
            written.append(str(paths.keypoints(variant, split)))
            log.info("%s %s (online): %d person results -> %s", variant, split, len(results), written[-1])
    return written
