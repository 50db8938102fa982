"""OKS-NMS on hand-checked poses."""

from __future__ import annotations

import numpy as np
import pytest
from sgpose.evaluation.nms import nms_results, oks_matrix, oks_nms

SIGMAS = np.full(2, 0.1)  # two joints, var = (2 * 0.1)^2 = 0.04


def test_oks_matrix_hand_checked():
    kpts = np.array([[[0, 0], [10, 0]], [[1, 0], [10, 0]]], dtype=float)
    oks = oks_matrix(kpts, np.array([100.0, 100.0]), SIGMAS)
    # joint 0: d^2 = 1 -> exp(-1 / 0.04 / 100 / 2) = exp(-0.125); joint 1: d = 0 -> 1
    assert oks[0, 1] == pytest.approx((np.exp(-0.125) + 1) / 2) == oks[1, 0]
    assert np.diag(oks) == pytest.approx([1, 1])


def test_oks_nms_keeps_best_and_distinct():
    kpts = np.array([[[0, 0], [10, 0]], [[1, 0], [10, 0]], [[50, 50], [60, 50]]], dtype=float)
    scores = np.array([0.8, 0.9, 0.5])
    areas = np.full(3, 100.0)
    # pose 1 (best) and pose 0 overlap with OKS 0.941: suppressed at 0.9, kept at 0.95
    assert oks_nms(kpts, scores, areas, SIGMAS, 0.9).tolist() == [1, 2]
    assert oks_nms(kpts, scores, areas, SIGMAS, 0.95).tolist() == [1, 0, 2]
    assert oks_nms(kpts[:0], scores[:0], areas[:0], SIGMAS).tolist() == []


def test_nms_results_per_image():
    def res(image, xy, score):
        return {"image_id": image, "category_id": 1, "keypoints": [xy[0], xy[1], 1, 10, 0, 1],
                "score": score, "area": 100.0}
    results = [res(1, (0, 0), 0.8), res(2, (1, 0), 0.9), res(1, (1, 0), 0.9), res(2, (0, 0), 0.1)]
    kept = nms_results(results, SIGMAS, 0.9)
    assert kept == [results[1], results[2]]  # one per image, original order; never across images
    assert nms_results([], SIGMAS) == []
