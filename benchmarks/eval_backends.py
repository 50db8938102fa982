"""Time the two OKS evaluators (evaluate.backend) on the real COCO sample, GT replicated as noisy
results; prints seconds per run and the largest metric difference (expected 0). Not a test.

    SGPOSE_MIRROR=../shared/data python benchmarks/eval_backends.py [repeats]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sgpose.core.keypoints import COCO
from sgpose.evaluation.coco_eval import METRIC_NAMES, evaluate_keypoints

MIRROR = Path(os.environ.get("SGPOSE_MIRROR", "../shared/data"))


def noisy_results(gt: dict, copies: int, seed: int = 0) -> list[dict]:
    """`copies` noisy versions of every labelled person (like several boxes per person)."""
    rng = np.random.default_rng(seed)
    anns = [a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0)]
    kp = np.asarray([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
    out = []
    for _ in range(copies):
        xy = kp[..., :2] + rng.normal(0, 6, kp[..., :2].shape)
        flat = np.concatenate([xy, np.ones_like(xy[..., :1])], -1).reshape(len(anns), -1)
        out += [{"image_id": a["image_id"], "category_id": 1, "keypoints": f.tolist(), "score": float(s)}
                for a, f, s in zip(anns, flat, rng.uniform(0.2, 1, len(anns)))]
    return out


def main(repeats: int = 3) -> None:
    gt = json.loads((MIRROR / "coco_sample/annotations/person_keypoints_sample.json").read_text())
    results = noisy_results(gt, copies=10)
    metrics = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        start = time.perf_counter()
        for _ in range(repeats):
            metrics[backend] = evaluate_keypoints(gt, results, COCO.sigmas, backend=backend)
        print(f"{backend:17s} {(time.perf_counter() - start) / repeats:.3f} s per evaluation "
              f"({len(results)} results, {len(gt['images'])} images), AP {metrics[backend]['AP']:.4f}")
    diff = max(abs(metrics["pycocotools"][k] - metrics["faster_coco_eval"][k]) for k in METRIC_NAMES)
    print(f"largest metric difference: {diff:.2e}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
