"""COCO keypoint annotations -> validated dicts, deterministic image splits, person instance tables.

The instance table (docs/architecture.md) has one row per person crop with its box, crop
(center, scale) and ground-truth keypoints; boxes are cleaned as SimpleBaseline/HRNet's
`_load_coco_keypoint_annotation_kernal` does, so crops match the reference implementation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sgpose.core.io import read_json
from sgpose.core.keypoints import KeypointLayout
from sgpose.data.transforms import box_to_center_scale

INSTANCE_COLUMNS = (
    "image_id", "file_name", "width", "height", "ann_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
    "center_x", "center_y", "scale_w", "scale_h", "score", "keypoints", "num_keypoints", "area",
)
_REQUIRED = ("images", "annotations", "categories")


def validate_coco(coco: Any, layout: KeypointLayout, source: str | Path = "<annotations>") -> dict:
    """Check a COCO keypoint dict's structure and keypoint lengths; errors name `source` (and ann id)."""
    if not isinstance(coco, dict):
        raise ValueError(f"{source}: expected a COCO annotation object (a JSON dict), got {type(coco).__name__}")
    missing = [k for k in _REQUIRED if not isinstance(coco.get(k), list)]
    if missing:
        raise ValueError(f"{source}: not a COCO annotation file: missing or non-list key(s) {missing}")
    for img in coco["images"]:
        if not isinstance(img, dict) or any(k not in img for k in ("id", "file_name", "width", "height")):
            raise ValueError(f"{source}: image record {img!r:.80} lacks id/file_name/width/height")
    k3 = 3 * layout.num_joints
    for ann in coco["annotations"]:
        if not isinstance(ann, dict) or any(k not in ann for k in ("id", "image_id", "bbox")):
            raise ValueError(f"{source}: annotation {ann!r:.80} lacks id/image_id/bbox")
        kps = ann.get("keypoints")
        if kps is not None and len(kps) != k3:
            raise ValueError(
                f"{source}: annotation id {ann['id']} has {len(kps)} keypoint values; layout "
                f"{layout.name!r} needs {k3} ({layout.num_joints} joints x 3)")
    return coco


def load_coco(path: str | Path, layout: KeypointLayout) -> dict:
    """Read and validate a COCO keypoint annotation file."""
    return validate_coco(read_json(path), layout, path)


def _split_key(seed: int, image_id: int) -> str:
    return hashlib.sha1(f"{seed}:{image_id}".encode()).hexdigest()


def split_images(image_ids, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train_ids, val_ids), each sorted: images ranked by sha1(f"{seed}:{id}").

    The first round(n * val_fraction) ranked images form val (at least 1 and at most n - 1 when
    n >= 2), so the split depends only on the id set and the seed, never on input order.
    """
    ids = sorted({int(i) for i in image_ids})
    n_val = int(round(len(ids) * val_fraction))
    if len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    ranked = sorted(ids, key=lambda i: _split_key(seed, i))
    val = set(ranked[:n_val])
    return [i for i in ids if i not in val], sorted(val)


def sanitize_bbox(bbox, width: int, height: int) -> tuple[float, float, float, float] | None:
    """Clip an (x, y, w, h) box to the image like SimpleBaseline's _sanitize; None if w or h < 1."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return x1, y1, x2 - x1, y2 - y1


def _num_keypoints(ann: dict) -> int:
    """Labelled joints: the annotation's `num_keypoints`, else the count of v > 0."""
    if "num_keypoints" in ann:
        return int(ann["num_keypoints"])
    kps = ann.get("keypoints") or []
    return int(sum(1 for v in kps[2::3] if v > 0))


def _person_category_ids(coco: dict) -> set[int]:
    """Categories with a keypoint definition (COCO's 'person'); all categories if none declares one."""
    with_kps = {c["id"] for c in coco["categories"] if "keypoints" in c}
    return with_kps or {c["id"] for c in coco["categories"]}


def _row(img: dict, ann: dict, box, aspect: float, padding: float) -> dict:
    center, scale = box_to_center_scale(np.asarray(box), aspect=aspect, padding=padding)
    return {
        "image_id": int(img["id"]), "file_name": img["file_name"],
        "width": int(img["width"]), "height": int(img["height"]), "ann_id": int(ann["id"]),
        "bbox_x": box[0], "bbox_y": box[1], "bbox_w": box[2], "bbox_h": box[3],
        "center_x": float(center[0]), "center_y": float(center[1]),
        "scale_w": float(scale[0]), "scale_h": float(scale[1]), "score": 1.0,
        "keypoints": [float(v) for v in ann["keypoints"]],
        "num_keypoints": _num_keypoints(ann), "area": float(ann.get("area", box[2] * box[3])),
    }


def instances_from_gt(coco: dict, image_ids, layout: KeypointLayout, aspect: float,
                      padding: float = 1.25, min_keypoints: int = 1) -> pd.DataFrame:
    """Instance table of the ground-truth persons of `image_ids` (crowd, sparse and degenerate boxes skipped).

    `aspect` is the crop's input width / height; `layout` fixes the keypoint count (3K floats per row).
    """
    wanted = {int(i) for i in image_ids}
    images = {int(img["id"]): img for img in coco["images"] if int(img["id"]) in wanted}
    persons = _person_category_ids(coco)
    rows = []
    for ann in sorted(coco["annotations"], key=lambda a: (int(a["image_id"]), int(a["id"]))):
        img = images.get(int(ann["image_id"]))
        if img is None or ann.get("iscrowd", 0) or ann.get("category_id", 1) not in persons:
            continue
        if ann.get("keypoints") is None or len(ann["keypoints"]) != 3 * layout.num_joints:
            continue
        if _num_keypoints(ann) < min_keypoints or ann.get("area", 1) <= 0:
            continue
        box = sanitize_bbox(ann["bbox"], int(img["width"]), int(img["height"]))
        if box is not None:
            rows.append(_row(img, ann, box, aspect, padding))
    return pd.DataFrame(rows, columns=list(INSTANCE_COLUMNS)).astype(instance_dtypes())


def instance_dtypes() -> dict[str, str]:
    """The instance table's column dtypes that pandas would not infer from an empty or mixed table."""
    return {"image_id": "int64", "width": "int64", "height": "int64", "ann_id": "int64",
            "num_keypoints": "int64", "score": "float64", "area": "float64"}


def subset_annotations(coco: dict, image_ids) -> dict:
    """COCO ground truth restricted to `image_ids`, every annotation of them kept (crowd regions and
    persons without keypoints too: COCOeval needs them to ignore matches correctly)."""
    wanted = {int(i) for i in image_ids}
    out = {k: v for k, v in coco.items() if k not in ("images", "annotations")}
    out["images"] = [img for img in coco["images"] if int(img["id"]) in wanted]
    out["annotations"] = [a for a in coco["annotations"] if int(a["image_id"]) in wanted]
    return out


def read_instances(path: str | Path) -> pd.DataFrame:
    """The instance table of one split (`prepare`'s output); a missing file names the stage that writes it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: instance table not found (has the prepare stage run?)")
    return pd.read_parquet(path)
