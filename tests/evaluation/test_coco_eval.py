"""evaluate_keypoints against pycocotools on real COCO annotations; to_coco_results format."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import MIRROR, require
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sgpose.core.keypoints import COCO as COCO_LAYOUT
from sgpose.evaluation.coco_eval import METRIC_NAMES, evaluate_keypoints
from sgpose.evaluation.results import to_coco_results

SAMPLE = MIRROR / "coco_sample" / "annotations" / "person_keypoints_sample.json"
FIXTURE = MIRROR / "fixtures" / "coco" / "test_coco.json"
SIGMAS = COCO_LAYOUT.sigmas


def _gt_file(path: Path) -> Path:
    require(path)
    return path


def gt_as_results(gt: dict, noise: float = 0.0, seed: int = 0) -> list[dict]:
    """Ground-truth persons with keypoints as results, optionally with seeded Gaussian noise."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0) or ann["num_keypoints"] == 0:
            continue
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        xy = kp[:, :2] + rng.normal(0.0, noise, size=kp[:, :2].shape) if noise else kp[:, :2]
        flat = np.concatenate([xy, np.ones((len(kp), 1))], axis=1).reshape(-1)
        out.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": flat.tolist(),
                    "score": float(rng.uniform(0.5, 1.0))})
    return out


def pycocotools_reference(gt_path: Path, results: list[dict]) -> np.ndarray:
    """COCOeval run directly, the way its README does."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(SIGMAS)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("path", [SAMPLE, FIXTURE], ids=["sample", "fixture"])
def test_ground_truth_scores_one(path):
    gt_path = _gt_file(path)
    gt = json.loads(gt_path.read_text())
    m = evaluate_keypoints(gt_path, gt_as_results(gt), SIGMAS)
    assert m["AP"] == pytest.approx(1.0)
    assert m["AP50"] == pytest.approx(1.0)
    assert m["num_images"] == len(gt["images"])
    assert set(METRIC_NAMES) <= set(m)


@pytest.mark.parametrize("path", [SAMPLE, FIXTURE], ids=["sample", "fixture"])
def test_noisy_matches_pycocotools(path):
    gt_path = _gt_file(path)
    gt = json.loads(gt_path.read_text())
    results = gt_as_results(gt, noise=8.0, seed=1)
    m = evaluate_keypoints(str(gt_path), results, SIGMAS)
    ref = pycocotools_reference(gt_path, results)
    assert m["AP"] < 1.0
    for name, value in zip(METRIC_NAMES, ref):
        assert m[name] == pytest.approx(float(value), abs=1e-9), name
    assert m["num_instances"] == len(results)


def test_inputs_not_mutated_and_dict_gt():
    gt = json.loads(_gt_file(FIXTURE).read_text())
    results = gt_as_results(gt)
    gt_copy, res_copy = copy.deepcopy(gt), copy.deepcopy(results)
    m = evaluate_keypoints(gt, results, SIGMAS)
    assert m["AP"] == pytest.approx(1.0)
    assert gt == gt_copy and results == res_copy


def test_results_off_gt_images_are_dropped():
    gt = json.loads(_gt_file(FIXTURE).read_text())
    results = gt_as_results(gt)
    stray = dict(results[0], image_id=-12345)
    m = evaluate_keypoints(gt, results + [stray], SIGMAS)
    assert m["AP"] == pytest.approx(1.0)
    assert m["num_instances"] == len(results)


def test_empty_results_give_zeros(tmp_path):
    gt_path = _gt_file(FIXTURE)
    res = tmp_path / "empty.json"
    res.write_text("[]")
    m = evaluate_keypoints(gt_path, res, SIGMAS)
    assert all(m[k] == 0.0 for k in METRIC_NAMES)
    assert m["num_instances"] == 0


def test_to_coco_results_format_and_rescoring():
    coords = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.0, 0.2]], dtype=np.float32)
    res = to_coco_results(np.array([7, 8]), coords, scores, np.array([0.5, 1.0]))
    assert [r["image_id"] for r in res] == [7, 8]
    assert res[0]["keypoints"][:3] == pytest.approx([0.0, 1.0, 0.9])
    assert len(res[0]["keypoints"]) == 9
    assert res[0]["score"] == pytest.approx(0.5 * (0.9 + 0.5) / 2)
    assert res[1]["score"] == 0.0  # no joint above 0.2
    assert all(type(v) is float for r in res for v in r["keypoints"] + [r["score"]])
    assert type(res[0]["image_id"]) is int and res[0]["category_id"] == 1
    json.dumps(res)
