"""`sgpose infer --variant V`: heatmaps for the evaluation split -> COCO results JSON (SPEC 5).

`baseline` decodes the backbone's own heatmaps Y0 (same decoding, same evaluation); a refined
variant runs its trained UNet over the cached features first.
"""

from __future__ import annotations

import argparse
import logging

import torch

from sgpose.cache import load_cache
from sgpose.config import Params, Paths
from sgpose.data.heatmaps import decode
from sgpose.data.transforms import heatmap_to_image
from sgpose.evaluation.results import to_coco_results
from sgpose.io import write_json
from sgpose.refine import guidance_spec, refine_static
from sgpose.stages.train_refiner import REFINED_VARIANTS, feature_list, load_refiner

log = logging.getLogger(__name__)
VARIANTS = ("baseline", *REFINED_VARIANTS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, choices=VARIANTS, help="baseline or a refined variant")


def refined_heatmaps(params: Params, paths: Paths, variant: str, data: dict) -> torch.Tensor:
    """The final heatmaps of one variant for every cached sample, in batches."""
    y0 = torch.from_numpy(data["heatmaps"]).float()
    if variant == "baseline":
        return y0
    unet = load_refiner(paths.refiner(variant), params)
    spec = guidance_spec(params)
    log.info("static inference: only step t=T-1=%d affects the output; the other steps are skipped", params.guidance.T - 1)
    bs = params.infer.batch_size
    return torch.cat([refine_static(unet, spec, feature_list(data, slice(i, i + bs)), y0[i:i + bs])
                      for i in range(0, len(y0), bs)])


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    split = params.evaluate.split
    data = load_cache(paths.cache(split))
    heatmaps = refined_heatmaps(params, paths, args.variant, data)
    coords, scores = decode(heatmaps)
    joints = heatmap_to_image(coords.numpy(), data["meta/center"], data["meta/scale"], tuple(params.backbone.heatmap_size))
    results = to_coco_results(data["meta/image_id"], joints, scores.numpy(), data["meta/score"])
    write_json(paths.keypoints(args.variant, split), results, indent=None)
    log.info("%s: %d person results -> %s", args.variant, len(results), paths.keypoints(args.variant, split))
