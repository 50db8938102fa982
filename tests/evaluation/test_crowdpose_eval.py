"""CrowdPose metrics against the CrowdPose toolkit's reference implementations (xtcocotools'
keypoints_crowd, built from source by scripts/test_setup.sh, and faster-coco-eval's
CrowdPose mode), and the two backends against each other on perturbed real COCO and CrowdPose
ground truth (1e-9)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os

import numpy as np
import pytest
from conftest import MIRROR, require
from faster_coco_eval import COCO as FCOCO
from faster_coco_eval import COCOeval_faster
from sgpose.core.keypoints import COCO, CROWDPOSE
from sgpose.evaluation.coco_eval import CROWDPOSE_METRIC_NAMES, METRIC_NAMES, crowd_buckets, evaluate_keypoints
from test_coco_eval import gt_as_results

CROWD = MIRROR / "fixtures/crowdpose/test_crowdpose.json"
SAMPLE = MIRROR / "coco_sample/annotations/person_keypoints_sample.json"


def _crowd_gt(easy_hard: bool) -> dict:
    """The CrowdPose fixture; with easy_hard its two images' crowdIndex become 0.1 and 0.9 (both are
    medium, 0.33 and 0.39, as published), so all three buckets are exercised."""
    gt = json.loads(require(CROWD).read_text())
    if easy_hard:
        gt["images"][0]["crowdIndex"], gt["images"][1]["crowdIndex"] = 0.1, 0.9
    return gt


def _toolkit(gt: dict, results: list[dict]) -> np.ndarray:
    """faster-coco-eval's keypoints_crowd summarize (the CrowdPose toolkit's, bucket APs rounded to 4)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = FCOCO(copy.deepcopy(gt))
        ev = COCOeval_faster(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "keypoints_crowd",
                             kpt_oks_sigmas=list(CROWDPOSE.sigmas), use_area=False, print_function=lambda *a: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.all_stats)


def _xtcocotools(gt: dict, results: list[dict], tmp_path) -> np.ndarray:
    """xtcocotools' keypoints_crowd stats (it re-reads the ground truth file to split by crowdIndex)."""
    try:
        from xtcocotools.coco import COCO as XCOCO
        from xtcocotools.cocoeval import COCOeval as XCOCOeval
    except ImportError:
        message = "xtcocotools not importable (scripts/test_setup.sh builds it from source)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = XCOCO(str(path))
        ev = XCOCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "keypoints_crowd",
                       np.array(CROWDPOSE.sigmas), use_area=False)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


@pytest.mark.parametrize("noise", [6.0, 15.0])
@pytest.mark.parametrize("easy_hard", [False, True], ids=["published", "easy_hard"])
@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_crowdpose_matches_xtcocotools(backend, easy_hard, noise, tmp_path):
    gt = _crowd_gt(easy_hard)
    results = gt_as_results(gt, noise=noise, seed=3)
    m = evaluate_keypoints(gt, results, CROWDPOSE.sigmas, backend=backend, crowdpose=True)
    ref = _xtcocotools(gt, results, tmp_path)
    assert 0 < m["AP"] < 1
    for i, name in enumerate(CROWDPOSE_METRIC_NAMES[:6]):
        assert m[name] == pytest.approx(float(ref[i]), abs=1e-9), name
    for i, name in enumerate(CROWDPOSE_METRIC_NAMES[6:], start=6):
        assert round(m[name], 4) == pytest.approx(float(ref[i]), abs=1e-12), name  # xtcocotools rounds these


@pytest.mark.parametrize("easy_hard", [False, True], ids=["published", "easy_hard"])
@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_crowdpose_matches_toolkit(backend, easy_hard):
    gt = _crowd_gt(easy_hard)
    results = gt_as_results(gt, noise=6.0, seed=3)
    m = evaluate_keypoints(gt, results, CROWDPOSE.sigmas, backend=backend, crowdpose=True)
    ref = _toolkit(gt, results)
    assert set(CROWDPOSE_METRIC_NAMES) <= set(m) and 0 < m["AP"] < 1
    for i, name in enumerate(CROWDPOSE_METRIC_NAMES[:6]):
        assert m[name] == pytest.approx(float(ref[i]), abs=1e-9), name
    for i, name in enumerate(CROWDPOSE_METRIC_NAMES[6:], start=6):
        assert round(m[name], 4) == pytest.approx(float(ref[i]), abs=1e-12), name  # the toolkit rounds
    buckets = [len(b) for b in crowd_buckets(gt)]
    assert buckets == ([1, 0, 1] if easy_hard else [0, 2, 0])
    if not easy_hard:
        assert m["AP_easy"] == m["AP_hard"] == -1.0 and m["AP_medium"] == pytest.approx(m["AP"], abs=1e-9)


def test_crowdpose_ground_truth_scores_one():
    gt = _crowd_gt(True)
    m = evaluate_keypoints(gt, gt_as_results(gt), CROWDPOSE.sigmas, crowdpose=True)
    assert all(m[k] == pytest.approx(1.0) for k in CROWDPOSE_METRIC_NAMES if k != "AP_medium")
    assert m["AP_medium"] == -1.0  # no image left in the medium bucket: the tools' "no data"


@pytest.mark.parametrize("noise", [4.0, 12.0])
def test_backends_agree_on_coco_sample(noise):
    gt = json.loads(require(SAMPLE).read_text())
    results = gt_as_results(gt, noise=noise, seed=7)
    a = evaluate_keypoints(gt, results, COCO.sigmas, backend="pycocotools")
    b = evaluate_keypoints(gt, results, COCO.sigmas, backend="faster_coco_eval")
    assert 0 < a["AP"] < 1
    for name in METRIC_NAMES:
        assert a[name] == pytest.approx(b[name], abs=1e-9), name


def test_crowdpose_needs_crowd_index():
    gt = _crowd_gt(False)
    del gt["images"][1]["crowdIndex"]
    with pytest.raises(ValueError, match="crowdIndex"):
        evaluate_keypoints(gt, gt_as_results(gt, noise=2.0), CROWDPOSE.sigmas, crowdpose=True)


def test_unknown_backend():
    gt = _crowd_gt(False)
    with pytest.raises(ValueError, match="unknown evaluation backend 'xt'"):
        evaluate_keypoints(gt, gt_as_results(gt), CROWDPOSE.sigmas, backend="xt")
