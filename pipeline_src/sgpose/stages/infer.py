"""`sgpose infer --backbone B --variant V`: each evaluation split's heatmaps -> COCO results JSON
(docs/method.md, "Inference").

The stage writes `<variant>/predictions/<split>.json` per cached split of the backbone (its `online`
splits are `sgpose infer_online`'s: no cache); what it computes (decoding, refinement, the flip test) is
`sgpose.inference.cached`'s. Every final heatmap is decoded as `variants.decode_mode` says: `infer.decode`
(standard | dark), except `baseline_dark`, always DARK.
"""

from __future__ import annotations

import argparse
import logging

import torch

from sgpose.config.schema import SPLITS
from sgpose.core import variants
from sgpose.core.io import write_json
from sgpose.inference import cached
from sgpose.runtime import compute
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, type=variants.argument,
                        help="baseline, baseline_dark or a refined variant (A1..A4, ours, ours_S<k>, ours_<schedule>)")
    parser.add_argument("--split", action="append", dest="splits", choices=SPLITS,
                        help="only this evaluation split (repeatable; default: every split the variant is scored on "
                        "from the cache)")


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
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
    refiner, setting = cached.refiner_for(params, paths, args.variant, dev), cached.Setting.of(params, dev)
    for split in wanted:
        results = cached.split_results(paths.cache(split), refiner, setting, mode)
        write_json(paths.keypoints(args.variant, split), results, indent=None)
        log.info("%s %s (%s decoding): %d person results -> %s", args.variant, split, mode.value, len(results),
                 paths.keypoints(args.variant, split))


def final_heatmaps(params, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The baseline's final heatmaps of a batch of backbone outputs, as the stage computes them: the form
    `../shared/reference/official_parity/parity.py` calls (with `params.infer.flip_test` and `params.layout`)."""
    from sgpose.config.schema import ComputeParams, InferParams
    from sgpose.core.keypoints import get_layout

    infer = InferParams(flip_test=params.infer.flip_test)
    s = cached.Setting(infer, ComputeParams(), get_layout(params.layout).flip_permutation(), 0.0)
    return cached.final_heatmaps(batch, None, s)
