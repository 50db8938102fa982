"""A small synthetic HDF5 cache written with sgpose.cache's writer (the real contract, random content)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sgpose.cache.writer import write_cache


def write_synthetic_cache(path: Path, n: int = 4, k: int = 17, size=(32, 24), channels=(8, 8, 8),
                          flip: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Write and return the arrays: heatmaps, feat/i, targets, joints, meta (+ flip/* if asked)."""
    rng = np.random.default_rng(seed)
    h, w = size
    arrays = {"heatmaps": rng.random((n, k, h, w)), "target": rng.random((n, k, h, w)),
              "target_weight": np.ones((n, k)), "joints": np.concatenate(
                  [rng.random((n, k, 2)) * [w - 1, h - 1], np.full((n, k, 1), 2.0)], axis=-1),
              "meta/center": rng.random((n, 2)) * 100, "meta/scale": np.full((n, 2), 80.0),
              "meta/bbox": rng.random((n, 4)), "meta/image_id": np.arange(n), "meta/ann_id": np.arange(n),
              "meta/score": np.ones(n)}
    views = ("", "flip/") if flip else ("",)
    for prefix in views:
        if prefix:
            arrays["flip/heatmaps"] = rng.random((n, k, h, w))
        for i, c in enumerate(channels):
            arrays[f"{prefix}feat/{i}"] = rng.standard_normal((n, c, h >> i, w >> i))
    write_cache(path, arrays, {"layout": "coco"}, dtype="float32")
    return arrays
