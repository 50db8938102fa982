"""Decoded keypoints -> COCO results format (the `infer` stage's output, `evaluate`'s input)."""

from __future__ import annotations

import numpy as np

IN_VIS_THRESHOLD = 0.2  # SimpleBaseline's rescoring: only confident joints count


def instance_score(scores: np.ndarray, box_scores: np.ndarray, threshold: float = IN_VIS_THRESHOLD) -> np.ndarray:
    """Box score x mean of the keypoint scores above `threshold` (0 where none is): (N,)."""
    keep = np.asarray(scores) > threshold  # compared in the scores' own precision
    scores = np.asarray(scores, dtype=np.float64)
    count = keep.sum(axis=1)
    mean = np.where(count > 0, (scores * keep).sum(axis=1) / np.maximum(count, 1), 0.0)
    return mean * np.asarray(box_scores, dtype=np.float64)


def to_coco_results(
    image_ids: np.ndarray, coords_img: np.ndarray, scores: np.ndarray, box_scores: np.ndarray,
    category_id: int = 1, areas: np.ndarray | None = None,
) -> list[dict]:
    """One COCO result per instance: keypoints flattened (x, y, score), rescored, plain Python types.

    image_ids (N,), coords_img (N, K, 2) in image pixels, scores (N, K), box_scores (N,). `areas`
    (N,), the crop areas scale_w * scale_h, is written as `area` for OKS-NMS (evaluation.nms; the
    evaluators recompute their own `area` from the keypoints, so it never changes AP).
    """
    coords = np.asarray(coords_img, dtype=np.float64)
    inst = instance_score(scores, box_scores)
    scores = np.asarray(scores, dtype=np.float64)
    if coords.ndim != 3 or coords.shape[-1] != 2 or scores.shape != coords.shape[:2]:
        raise ValueError(f"expected coords (N, K, 2) and scores (N, K), got {coords.shape} and {scores.shape}")
    flat = np.concatenate([coords, scores[..., None]], axis=-1).reshape(len(coords), -1)
    out = [
        {"image_id": int(i), "category_id": int(category_id), "keypoints": [float(v) for v in kp], "score": float(s)}
        for i, kp, s in zip(np.asarray(image_ids).reshape(-1), flat, inst)
    ]
    if areas is not None:
        for r, a in zip(out, np.asarray(areas, dtype=np.float64).reshape(-1)):
            r["area"] = float(a)
    return out


def heatmap_results(heatmaps, center: np.ndarray, scale: np.ndarray, image_ids: np.ndarray, box_scores: np.ndarray,
                    mode: str = "standard", sigma: float | None = None) -> list[dict]:
    """COCO results of a batch of final heatmaps (N, K, h, w) (a torch tensor on the CPU) of crops with
    `center`, `scale` (N, 2) in image pixels: decoded (`mode` standard | dark, dark with the targets'
    `sigma`; sgpose.data.decoding), mapped to the image, rescored; `area` is the crop area (the OKS-NMS
    scale). One function for the cached and the online inference paths."""
    from sgpose.data.decoding import decode
    from sgpose.data.transforms import heatmap_to_image

    coords, scores = decode(heatmaps, mode, sigma)
    center, scale = np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    joints = heatmap_to_image(coords.numpy(), center, scale, tuple(heatmaps.shape[-2:]))
    return to_coco_results(image_ids, joints, scores.numpy(), box_scores, areas=np.prod(scale, axis=1))
