"""A small cache's arrays and attributes, shared by the cache and report tests (tests/ is on the path)."""

import numpy as np

N, K = 5, 17


def arrays(rng=np.random.default_rng(0)):
    return {
        "heatmaps": rng.random((N, K, 16, 12)), "feat/0": rng.random((N, 8, 16, 12)),
        "feat/1": rng.random((N, 8, 8, 6)), "feat/2": rng.random((N, 8, 4, 3)),
        "target": rng.random((N, K, 16, 12)), "target_weight": rng.integers(0, 2, (N, K)).astype(float),
        "joints": rng.random((N, K, 3)) * 10, "meta/center": rng.random((N, 2)) * 600,
        "meta/scale": rng.random((N, 2)) * 300, "meta/bbox": rng.random((N, 4)) * 300,
        "meta/image_id": np.arange(N) + 785, "meta/ann_id": np.arange(N) * 1000,
        "meta/score": rng.random(N),
    }


ATTRS = {"layout": "coco", "input_size": [64, 48], "heatmap_size": [16, 12], "num_joints": K,
         "backbone": {"name": "t", "depth": 18}, "checkpoint_sha256": "ab" * 32}
