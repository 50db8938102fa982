"""`sgpose infer --backbone B --variant V`: each evaluation split's heatmaps -> COCO results JSON (SPEC 5).

The stage writes `<variant>/predictions/<split>.json` per cached split of the backbone (its `online`
splits are `sgpose infer_online`'s: no cache); what it computes
(decoding, refinement, the flip test) is `sgpose.inference`'s. Every final heatmap is decoded as
`variants.decode_mode` says: `infer.decode` (standard | dark), except `baseline_dark`, always DARK.
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
                        help="baseline, baseline_dark or a refined variant (A1..A4, ours, ours_S<k>, ours_<schedule>)")
    parser.add_argument("--split", action="append", dest="splits", choices=SPLITS,
                        help="only this evaluation split (repeatable; default: every split the variant is scored on "
                        "from the cache)")


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    dev = compute.device(params.compute)
    mode = variants.decode_mode(args.variant, params.infer.decode)
    scored = params.evals_of(args.variant)
    wanted = getattr(args, "splits", None) or [s for s in scored if s not in params.online]
    unknown = [s for s in wanted if s not in scored]
    if unknown:
        raise ValueError(f"--split {unknown[0]}: {args.variant} of backbone {params.backbone.name} is scored on "
                         f"{', '.join(scored)} (evals.{params.backbone.name})")
    online = [s for s in wanted if s in params.online]
    if online:
        raise ValueError(f"--split {online[0]}: backbone {params.backbone.name} scores it online, without a cache "
                         f"(online.{params.backbone.name}): `sgpose infer_online --split {online[0]}` writes it")
    unet, spec = refiner_for(params, paths, args.variant, dev)
    for split in wanted:
        results = split_results(params, paths, split, unet, spec, dev, mode)
        write_json(paths.keypoints(args.variant, split), results, indent=None)
        log.info("%s %s (%s decoding): %d person results -> %s", args.variant, split, mode.value, len(results),
                 paths.keypoints(args.variant, split))
