"""`sgpose evaluate --backbone B --variant V`: OKS keypoint AP of one variant's predictions on each
evaluation split of the backbone; writes results/metrics/<dataset>/<backbone>/<variant>.json =
{split: metrics} (DVC metrics).

COCO metrics, or the CrowdPose toolkit's (AP_easy/medium/hard added) when the dataset's layout is
crowdpose; backend `evaluate.backend`. The detection-box split `val_det` first goes through OKS-NMS
per image at `evaluate.nms_threshold` (SimpleBaseline; the box-score x keypoint-score rescoring
happens in infer, sgpose.evaluation.results); it is scored against val's ground truth.
"""

from __future__ import annotations

import argparse
import logging

from sgpose.config.paths import Paths
from sgpose.config.schema import DET_SPLIT
from sgpose.config.selection import Params
from sgpose.core import variants
from sgpose.core.io import read_json, write_json
from sgpose.core.keypoints import get_layout
from sgpose.evaluation.coco_eval import evaluate_keypoints
from sgpose.evaluation.nms import nms_results
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, type=variants.argument,
                        help="which variant's predictions to score (baseline, A1, ..., ours, sweeps)")


def split_metrics(params: Params, paths: Paths, variant: str, split: str) -> dict:
    """The metrics of one variant on one split (OKS-NMS first on detector boxes)."""
    layout = get_layout(params.layout)
    results = read_json(paths.keypoints(variant, split))
    if split == DET_SPLIT:
        before = len(results)
        results = nms_results(results, layout.sigmas, params.evaluate.nms_threshold)
        log.info("OKS-NMS at %.2f: %d -> %d results", params.evaluate.nms_threshold, before, len(results))
    metrics = evaluate_keypoints(paths.split_annotations(split), results, layout.sigmas,
                                 backend=params.evaluate.backend, crowdpose=layout.name == "crowdpose")
    log.info("%s %s: AP %.4f AR %.4f on %d images (%d results)", variant, split, metrics["AP"], metrics["AR"],
             metrics["num_images"], metrics["num_instances"])
    return metrics


def main(run: Run) -> None:
    """Score `paths.keypoints(variant, split)` on the variant's evaluation splits (`Params.evals_of`)."""
    params, paths, args = run.params, run.paths, run.args
    metrics = {split: split_metrics(params, paths, args.variant, split) for split in params.evals_of(args.variant)}
    write_json(paths.metrics(args.variant), metrics)
