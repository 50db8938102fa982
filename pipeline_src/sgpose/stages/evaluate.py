"""`sgpose evaluate --variant V`: OKS keypoint AP of one variant's results; writes metrics.json."""

from __future__ import annotations

import argparse
import logging

from sgpose.config import Params, Paths
from sgpose.evaluation.coco_eval import evaluate_keypoints
from sgpose.io import read_json, write_json
from sgpose.keypoints import get_layout

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, help="which variant's results to score (baseline, A1, ..., ours)")


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    """Score `paths.keypoints(variant, split)` against the split's ground truth."""
    split = params.evaluate.split
    results = read_json(paths.keypoints(args.variant, split))
    metrics = evaluate_keypoints(paths.split_annotations(split), results, get_layout(params.layout).sigmas)
    metrics["variant"] = args.variant
    write_json(paths.metrics(args.variant), metrics)
    log.info("%s: AP %.4f AR %.4f on %d images (%d results)", args.variant, metrics["AP"], metrics["AR"],
             metrics["num_images"], metrics["num_instances"])
