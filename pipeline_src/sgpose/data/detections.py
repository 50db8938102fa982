"""Person detection results (COCO results format) -> instance rows, as SimpleBaseline's
`_load_coco_person_detection_results`: person boxes at or above a score threshold become crops with
`ann_id` -1, `score` = the detection score, zero keypoints; boxes are not clipped (the reference
does not clip them either), only boxes smaller than `min_box_area` (or empty) are dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from sgpose.core.io import read_json
from sgpose.core.keypoints import KeypointLayout
from sgpose.data.coco import INSTANCE_COLUMNS, instance_dtypes
from sgpose.data.transforms import box_to_center_scale

log = logging.getLogger(__name__)
PERSON = 1


def load_detections(path: str | Path) -> pd.DataFrame:
    """A detection file as a table (image_id, category_id, bbox_x/y/w/h, score); errors name the file."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: not a detection results file: expected a JSON list of "
                         f"{{image_id, category_id, bbox, score}}, got {type(rows).__name__}")
    bad = next((r for r in rows if not isinstance(r, dict) or any(k not in r for k in ("image_id", "bbox", "score"))
                or len(r["bbox"]) != 4), None)
    if bad is not None:
        raise ValueError(f"{path}: detection {bad!r:.80} lacks image_id/bbox (4 numbers)/score")
    boxes = np.asarray([r["bbox"] for r in rows], dtype=np.float64).reshape(-1, 4)
    return pd.DataFrame({
        "image_id": np.asarray([int(r["image_id"]) for r in rows], dtype=np.int64),
        "category_id": np.asarray([int(r.get("category_id", PERSON)) for r in rows], dtype=np.int64),
        "bbox_x": boxes[:, 0], "bbox_y": boxes[:, 1], "bbox_w": boxes[:, 2], "bbox_h": boxes[:, 3],
        "score": np.asarray([float(r["score"]) for r in rows], dtype=np.float64),
    })


def instances_from_detections(coco: dict, dets: pd.DataFrame, image_ids, layout: KeypointLayout, aspect: float,
                              padding: float = 1.25, score_threshold: float = 0.0,
                              min_box_area: float = 0.0) -> pd.DataFrame:
    """Instance table of the person detections on `image_ids` (images of `coco`), sorted by image then score."""
    images = pd.DataFrame(coco["images"])[["id", "file_name", "width", "height"]].rename(columns={"id": "image_id"})
    images = images[images.image_id.isin({int(i) for i in image_ids})].astype({"image_id": "int64"})
    area = dets.bbox_w * dets.bbox_h
    keep = ((dets.category_id == PERSON) & (dets.score >= score_threshold) & (dets.bbox_w > 0) & (dets.bbox_h > 0)
            & (area >= min_box_area))
    table = dets[keep].merge(images, on="image_id", how="inner")
    table = table.sort_values(["image_id", "score"], ascending=[True, False], kind="stable").reset_index(drop=True)
    log.info("detections: %d rows, %d kept (person, score >= %g, area >= %g), %d on the %d split images",
             len(dets), int(keep.sum()), score_threshold, min_box_area, len(table), len(images))
    boxes = table[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy()
    center, scale = box_to_center_scale(boxes, aspect=aspect, padding=padding) if len(table) else (
        np.zeros((0, 2)), np.zeros((0, 2)))
    table = table.assign(
        ann_id=-1, center_x=center[:, 0], center_y=center[:, 1], scale_w=scale[:, 0], scale_h=scale[:, 1],
        keypoints=[[0.0] * (3 * layout.num_joints)] * len(table), num_keypoints=0, area=boxes[:, 2] * boxes[:, 3])
    return table[list(INSTANCE_COLUMNS)].astype(instance_dtypes())
