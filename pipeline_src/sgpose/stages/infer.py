"""`sgpose infer --variant V`: heatmaps for the evaluation split -> COCO results JSON (SPEC 5).

`baseline` decodes the backbone's own heatmaps Y0 (same decoding, same evaluation); a refined
variant runs its trained UNet over the cached features first, in the reading `infer.mode`. With
`infer.flip_test` and a cache holding `flip/*`, each view is refined with its own features and Y0
and the mirrored view is mapped back (`flip_back`) and averaged with the original.
"""

from __future__ import annotations

import argparse
import logging

import torch

from sgpose.cache import load_cache
from sgpose.config import Params, Paths
from sgpose.data.heatmaps import decode, flip_back
from sgpose.data.transforms import heatmap_to_image
from sgpose.evaluation.results import to_coco_results
from sgpose.io import write_json
from sgpose.keypoints import get_layout
from sgpose.refine import GuidanceSpec, guidance_spec, refine
from sgpose.stages.train_refiner import feature_list, load_refiner
from sgpose.variants import ALL, BASELINE

log = logging.getLogger(__name__)
VARIANTS = ALL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, choices=VARIANTS, help="baseline or a refined variant")


def view_heatmaps(data: dict, prefix: str, bs: int, unet=None, spec: GuidanceSpec | None = None,
                  mode: str = "static") -> torch.Tensor:
    """One view's final heatmaps (`prefix` '' or 'flip/'): Y0 for the baseline, else refined in batches."""
    y0 = torch.from_numpy(data[f"{prefix}heatmaps"]).float()
    if unet is None:
        return y0
    return torch.cat([refine(unet, spec, feature_list(data, slice(i, i + bs), prefix), y0[i:i + bs], mode)
                      for i in range(0, len(y0), bs)])


def final_heatmaps(params: Params, data: dict, unet=None, spec: GuidanceSpec | None = None) -> torch.Tensor:
    """The heatmaps to decode: one view, or the average with the mirrored view mapped back."""
    ip = params.infer
    out = view_heatmaps(data, "", ip.batch_size, unet, spec, ip.mode)
    if not ip.flip_test:
        return out
    if "flip/heatmaps" not in data:
        log.warning("infer.flip_test is on but the cache has no flip/heatmaps: single view")
        return out
    flipped = view_heatmaps(data, "flip/", ip.batch_size, unet, spec, ip.mode)
    return 0.5 * (out + flip_back(flipped, get_layout(params.layout).flip_permutation()))


def refined_heatmaps(params: Params, paths: Paths, variant: str, data: dict) -> torch.Tensor:
    """The final heatmaps of one variant for every cached sample."""
    if variant == BASELINE:
        return final_heatmaps(params, data)
    unet = load_refiner(paths.refiner(variant), params, variant)
    spec = guidance_spec(params, variant, paths.start_pose)
    mode = params.infer.mode
    if spec.T == 1 or (mode == "static" and not spec.prev_heatmap):
        log.info("%s %s inference: only step t=T-1=%d affects the output; the other steps are skipped",
                 variant, mode if spec.T > 1 else "single-step", spec.T - 1)
    return final_heatmaps(params, data, unet, spec)


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    split = params.evaluate.split
    data = load_cache(paths.cache(split))
    heatmaps = refined_heatmaps(params, paths, args.variant, data)
    coords, scores = decode(heatmaps)
    joints = heatmap_to_image(coords.numpy(), data["meta/center"], data["meta/scale"], tuple(params.backbone.heatmap_size))
    results = to_coco_results(data["meta/image_id"], joints, scores.numpy(), data["meta/score"],
                              areas=data["meta/scale"].prod(axis=1))  # crop area: SimpleBaseline's OKS-NMS scale
    write_json(paths.keypoints(args.variant, split), results, indent=None)
    log.info("%s: %d person results -> %s", args.variant, len(results), paths.keypoints(args.variant, split))
