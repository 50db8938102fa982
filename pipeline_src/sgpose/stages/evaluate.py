"""`sgpose evaluate --variant V`: OKS keypoint AP of one variant's results; writes metrics.json.

COCO metrics, or the CrowdPose toolkit's (AP_easy/medium/hard added) when `layout` is crowdpose;
backend `evaluate.backend`. Detection-box runs (`prepare.boxes: detections`) first go through
OKS-NMS per image at `evaluate.nms_threshold` (SimpleBaseline; the box-score x keypoint-score
rescoring happens in infer, sgpose.evaluation.results).
"""

from __future__ import annotations

import argparse
import logging

from sgpose.config import Params, Paths
from sgpose.evaluation.coco_eval import evaluate_keypoints
from sgpose.evaluation.nms import nms_results
from sgpose.io import read_json, write_json
from sgpose.keypoints import get_layout

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, help="which variant's results to score (baseline, A1, ..., ours)")


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    """Score `paths.keypoints(variant, split)` against the split's ground truth."""
    split, layout = params.evaluate.split, get_layout(params.layout)
    results = read_json(paths.keypoints(args.variant, split))
    if params.prepare.boxes == "detections" and split == "val":
        before = len(results)
        results = nms_results(results, layout.sigmas, params.evaluate.nms_threshold)
        log.info("OKS-NMS at %.2f: %d -> %d results", params.evaluate.nms_threshold, before, len(results))
    metrics = evaluate_keypoints(paths.split_annotations(split), results, layout.sigmas,
                                 backend=params.evaluate.backend, crowdpose=layout.name == "crowdpose")
    metrics["variant"] = args.variant
    write_json(paths.metrics(args.variant), metrics)
    log.info("%s: AP %.4f AR %.4f on %d images (%d results)", args.variant, metrics["AP"], metrics["AR"],
             metrics["num_images"], metrics["num_instances"])
