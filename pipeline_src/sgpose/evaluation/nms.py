"""OKS non-maximum suppression of pose results (SimpleBaseline/HRNet's `oks_nms`), vectorised numpy.

Detection-box runs see several boxes on one person; the reference evaluation keeps, per image, the
highest-scoring pose and drops every other whose OKS with a kept one exceeds the threshold (0.9).
OKS here is SimpleBaseline's `oks_iou`: over all joints, scale = mean of the two instances' areas.
The pairwise OKS matrix of an image is computed at once; the greedy pass is the algorithm itself
(each decision depends on the previous ones) and runs over the image's kept poses only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def oks_matrix(kpts: np.ndarray, areas: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Pairwise OKS (N, N) of poses kpts (N, K, >=2) with areas (N,), as SimpleBaseline's oks_iou."""
    xy = np.asarray(kpts, dtype=np.float64)[..., :2]
    var = (np.asarray(sigmas, dtype=np.float64) * 2) ** 2
    d2 = ((xy[:, None] - xy[None]) ** 2).sum(-1)  # (N, N, K)
    scale = (areas[:, None] + areas[None]) / 2 + np.spacing(1)
    return np.exp(-d2 / var / scale[..., None] / 2).mean(-1)


def oks_nms(kpts: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: Sequence[float],
            threshold: float = 0.9) -> np.ndarray:
    """Indices kept by greedy OKS-NMS of one image's poses, best score first (stable for ties)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    oks = oks_matrix(np.asarray(kpts)[order], np.asarray(areas, dtype=np.float64)[order], sigmas)
    alive = np.ones(len(order), dtype=bool)
    for i in range(len(order)):  # greedy by definition; suppressed rows are skipped
        if alive[i]:
            alive[i + 1:] &= oks[i, i + 1:] <= threshold
    return order[alive]


def result_areas(results: list[dict]) -> np.ndarray:
    """Each result's `area` (the crop area, written by infer) or, absent, its keypoints' box area."""
    kp = np.asarray([r["keypoints"] for r in results], dtype=np.float64).reshape(len(results), -1, 3)
    extent = (kp[..., 0].max(1) - kp[..., 0].min(1)) * (kp[..., 1].max(1) - kp[..., 1].min(1))
    given = np.asarray([r.get("area", np.nan) for r in results], dtype=np.float64)
    return np.where(np.isnan(given), extent, given)


def nms_results(results: list[dict], sigmas: Sequence[float], threshold: float = 0.9) -> list[dict]:
    """OKS-NMS per image of COCO-format results; the survivors in their original order."""
    if not results:
        return []
    image_ids = np.asarray([r["image_id"] for r in results])
    kpts = np.asarray([r["keypoints"] for r in results], dtype=np.float64).reshape(len(results), -1, 3)
    scores = np.asarray([r["score"] for r in results], dtype=np.float64)
    areas = result_areas(results)
    by_image = np.argsort(image_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(image_ids[by_image])) + 1
    keep = [idx[oks_nms(kpts[idx], scores[idx], areas[idx], sigmas, threshold)]  # one matrix per image
            for idx in np.split(by_image, bounds)]
    return [results[i] for i in np.sort(np.concatenate(keep))]
