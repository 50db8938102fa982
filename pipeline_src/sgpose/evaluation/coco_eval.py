"""OKS keypoint AP/AR: COCO's protocol and the CrowdPose toolkit's, with two interchangeable backends.

Backends: `pycocotools` (COCO's reference code) and `faster_coco_eval` (a C++ reimplementation, about
2x faster on full COCO val; numbers identical to 1e-9, tests/evaluation/test_coco_eval.py). CrowdPose
(Jeff-sjtu/CrowdPose `crowdposetools`): OKS scale = 0.53 x GT box area (its annotations have no
`area`), 20 detections per image, metrics on all areas, plus AP(easy/medium/hard) over the images
whose `crowdIndex` is < 0.2, < 0.8, >= 0.8: mean of precision[:, :, :, all areas, :] of that subset,
-1 entries included, exactly as the toolkit's `get_type_result` (which then rounds to 4 decimals;
we keep full precision). A bucket without images scores -1, the COCO tools' "no data" value.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from sgpose.core.io import read_json
from sgpose.core.modes import EvalBackend

log = logging.getLogger(__name__)

METRIC_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
CROWDPOSE_METRIC_NAMES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")
BACKENDS = tuple(EvalBackend)
CROWD_THRESHOLDS = (0.2, 0.8)  # crowdIndex bucket edges of the CrowdPose toolkit's summarize()
CROWDPOSE_AREA_FACTOR = 0.53  # crowdposetools computeOks: tmparea = bbox w * h * 0.53


@contextlib.contextmanager
def _quiet(label: str):
    """Capture the evaluators' prints and pass them to the logger at debug level."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        text = buf.getvalue().strip()
        if text:
            log.debug("%s:\n%s", label, text)


def _gt_dict(gt: str | Path | dict) -> dict:
    return read_json(gt) if isinstance(gt, (str, Path)) else copy.deepcopy(gt)


def load_gt(gt: str | Path | dict):
    """A pycocotools COCO ground-truth object from a file or an in-memory dict (copied, never mutated)."""
    from pycocotools.coco import COCO

    with _quiet("pycocotools index"):
        coco = COCO()
        coco.dataset = _gt_dict(gt)
        coco.createIndex()
    return coco


def _load_results(results: list | str | Path) -> list[dict]:
    data = read_json(results) if isinstance(results, (str, Path)) else results
    if not isinstance(data, list):
        raise ValueError("results must be a list of COCO result dicts")
    return copy.deepcopy(data)


def _crowdpose_areas(data: dict) -> dict:
    """The CrowdPose OKS scale as each GT's `area` (what pycocotools reads): 0.53 x box area."""
    for ann in data["annotations"]:
        ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3]) * CROWDPOSE_AREA_FACTOR
    return data


def make_evaluator(backend: str, gt: dict, dets: list[dict], sigmas: Sequence[float], crowd: bool):
    """A ready COCOeval-like object (evaluate/accumulate, `.eval`, `.params`) of the chosen backend."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown evaluation backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == EvalBackend.FASTER_COCO_EVAL:
        from faster_coco_eval import COCO, COCOeval_faster

        coco_gt = COCO(gt)
        ev = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), "keypoints_crowd" if crowd else "keypoints",
                             kpt_oks_sigmas=list(sigmas), use_area=not crowd, print_function=log.debug)
    else:
        from pycocotools.cocoeval import COCOeval

        coco_gt = load_gt(_crowdpose_areas(gt) if crowd else gt)
        with _quiet("pycocotools loadRes"):
            ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    ev.params.imgIds = sorted(int(img["id"]) for img in gt["images"])
    return ev


def _summarize(ev, ap: bool, iou_thr: float | None = None, area: str = "all") -> float:
    """One COCOeval summary number (pycocotools' _summarize, at the largest maxDets)."""
    p = ev.params
    a = list(p.areaRngLbl).index(area)
    s = ev.eval["precision"][..., a, -1] if ap else ev.eval["recall"][..., a, -1]
    if iou_thr is not None:
        s = s[np.where(np.isclose(p.iouThrs, iou_thr))[0]]
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _run(ev, img_ids: list[int] | None = None) -> None:
    if img_ids is not None:
        ev.params.imgIds = img_ids
    with _quiet("evaluate"):
        ev.evaluate()
        ev.accumulate()


def crowd_buckets(gt: dict) -> tuple[list[int], list[int], list[int]]:
    """Image ids by crowdIndex: easy < 0.2 <= medium < 0.8 <= hard; an image without one is an error."""
    missing = [img["id"] for img in gt["images"] if "crowdIndex" not in img]
    if missing:
        raise ValueError(f"CrowdPose evaluation needs `crowdIndex` in every image record; missing for ids {missing[:5]}")
    idx = np.array([float(img["crowdIndex"]) for img in gt["images"]])
    ids = np.array([int(img["id"]) for img in gt["images"]])
    lo, hi = CROWD_THRESHOLDS
    return sorted(ids[idx < lo].tolist()), sorted(ids[(idx >= lo) & (idx < hi)].tolist()), sorted(ids[idx >= hi].tolist())


def _coco_stats(ev) -> dict:
    spec = [(True, None, "all"), (True, .5, "all"), (True, .75, "all"), (True, None, "medium"), (True, None, "large"),
            (False, None, "all"), (False, .5, "all"), (False, .75, "all"), (False, None, "medium"), (False, None, "large")]
    return {name: _summarize(ev, *s) for name, s in zip(METRIC_NAMES, spec)}


def _crowd_stats(ev, gt: dict) -> dict:
    spec = [(True, None), (True, .5), (True, .75), (False, None), (False, .5), (False, .75)]
    out = {name: _summarize(ev, *s) for name, s in zip(CROWDPOSE_METRIC_NAMES, spec)}
    for name, ids in zip(CROWDPOSE_METRIC_NAMES[6:], crowd_buckets(gt)):
        _run(ev, ids)
        out[name] = float(np.mean(ev.eval["precision"][:, :, :, 0, :])) if ids else -1.0
    return out


def evaluate_keypoints(gt: str | Path | dict, results: list | str | Path, sigmas: Sequence[float],
                       backend: str = EvalBackend.PYCOCOTOOLS, crowdpose: bool = False) -> dict:
    """OKS keypoint metrics on the images of `gt`: METRIC_NAMES (COCO) or CROWDPOSE_METRIC_NAMES.

    Results on images outside `gt` are dropped; no results at all gives zeros (not a crash).
    Adds `num_images` (ground-truth images) and `num_instances` (results scored).
    """
    data = _gt_dict(gt)
    ids = {int(img["id"]) for img in data["images"]}
    dets = [r for r in _load_results(results) if r["image_id"] in ids]
    out = {"num_images": len(ids), "num_instances": len(dets)}
    names = CROWDPOSE_METRIC_NAMES if crowdpose else METRIC_NAMES
    if not dets:
        log.warning("no results on the ground-truth images: every metric is 0")
        return {**dict.fromkeys(names, 0.0), **out}
    ev = make_evaluator(backend, data, dets, sigmas, crowdpose)
    _run(ev)
    stats = _crowd_stats(ev, data) if crowdpose else _coco_stats(ev)
    return {**stats, **out}
