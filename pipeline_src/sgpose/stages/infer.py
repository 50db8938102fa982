"""`sgpose infer --backbone B --variant V`: each evaluation split's heatmaps -> COCO results JSON (SPEC 5).

The stage writes `<variant>/predictions/<split>.json` per split of the backbone; what it computes
(decoding, refinement, the flip test) is `sgpose.inference`'s.
"""

from __future__ import annotations

import argparse
import logging

from sgpose import compute, variants
from sgpose.config.paths import Paths
from sgpose.config.schema import SPLITS
from sgpose.config.selection import Params
from sgpose.inference import final_heatmaps, refiner_for, split_results  # noqa: F401  final_heatmaps: for parity.py
from sgpose.io import write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, type=variants.argument,
                        help="baseline or a refined variant (A1..A4, ours, ours_S<k>, ours_<schedule>)")
    parser.add_argument("--split", action="append", dest="splits", choices=SPLITS,
                        help="only this evaluation split (repeatable; default: every split the variant is scored on)")


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    dev = compute.device(params.compute)
    unet, spec = refiner_for(params, paths, args.variant, dev)
    scored = params.evals_of(args.variant)
    wanted = getattr(args, "splits", None) or scored
    unknown = [s for s in wanted if s not in scored]
    if unknown:
        raise ValueError(f"--split {unknown[0]}: {args.variant} of backbone {params.backbone.name} is scored on "
                         f"{', '.join(scored)} (evals.{params.backbone.name})")
    for split in wanted:
        results = split_results(params, paths, split, unet, spec, dev)
        write_json(paths.keypoints(args.variant, split), results, indent=None)
        log.info("%s %s: %d person results -> %s", args.variant, split, len(results), paths.keypoints(args.variant, split))
