"""OKS keypoint AP/AR with pycocotools (COCO's official protocol), per-layout OKS sigmas."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sgpose.io import read_json

log = logging.getLogger(__name__)

METRIC_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")


@contextlib.contextmanager
def _quiet(label: str):
    """Capture pycocotools' prints and pass them to the logger at debug level."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        text = buf.getvalue().strip()
        if text:
            log.debug("pycocotools %s:\n%s", label, text)


def load_gt(gt: str | Path | dict) -> COCO:
    """A COCO ground-truth object from a file or an in-memory dict (copied, never mutated)."""
    data = read_json(gt) if isinstance(gt, (str, Path)) else copy.deepcopy(gt)
    with _quiet("index"):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    return coco


def _load_results(results: list | str | Path) -> list[dict]:
    data = read_json(results) if isinstance(results, (str, Path)) else results
    if not isinstance(data, list):
        raise ValueError("results must be a list of COCO result dicts")
    return copy.deepcopy(data)


def evaluate_keypoints(gt: str | Path | dict, results: list | str | Path, sigmas: Sequence[float]) -> dict:
    """COCOeval(iouType='keypoints') on the images of `gt`; returns the metrics of METRIC_NAMES.

    Results on images outside `gt` are dropped; no results at all gives zeros (not a crash).
    Adds `num_images` (ground-truth images) and `num_instances` (results scored).
    """
    coco_gt = load_gt(gt)
    img_ids = sorted(coco_gt.getImgIds())
    ids = set(img_ids)
    dets = [r for r in _load_results(results) if r["image_id"] in ids]
    out = {"num_images": len(img_ids), "num_instances": len(dets)}
    if not dets:
        log.warning("no results on the ground-truth images: every metric is 0")
        return {**dict.fromkeys(METRIC_NAMES, 0.0), **out}
    with _quiet("evaluate"):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {**{k: float(v) for k, v in zip(METRIC_NAMES, ev.stats)}, **out}
