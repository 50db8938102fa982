"""`sgpose prepare`: per split, the person instance table (parquet) and the split's COCO ground truth
(json, what evaluate scores).

Splits: with `data.val_annotations` the official ones (train = `data.annotations`, val = that file:
COCO train2017/val2017, CrowdPose train/val); without it, the images of `data.annotations` split by
`prepare.val_fraction`. Boxes: train always from GT; val from GT or, with `prepare.boxes: detections`,
from `prepare.detections` (sgpose.data.detections). The val ground truth is always the full split's.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from sgpose.config import Params, Paths
from sgpose.data.coco import instances_from_gt, load_coco, split_images, subset_annotations
from sgpose.data.detections import instances_from_detections, load_detections
from sgpose.io import atomic_path, write_json
from sgpose.keypoints import get_layout

log = logging.getLogger(__name__)


def split_sources(params: Params) -> dict[str, tuple[str, dict, list[int]]]:
    """split -> (annotation file, its COCO dict restricted to the split, image ids)."""
    layout, data, p = get_layout(params.layout), params.data, params.prepare
    coco = load_coco(data.annotations, layout)
    if data.val_annotations:
        val = load_coco(data.val_annotations, layout)
        return {"train": (data.annotations, coco, [int(i["id"]) for i in coco["images"]]),
                "val": (data.val_annotations, val, [int(i["id"]) for i in val["images"]])}
    train_ids, val_ids = split_images([img["id"] for img in coco["images"]], p.val_fraction, p.split_seed)
    return {"train": (data.annotations, coco, train_ids), "val": (data.annotations, coco, val_ids)}


def split_table(params: Params, split: str, coco: dict, ids: list[int]) -> pd.DataFrame:
    """The split's instances: GT boxes, or detections for val when `prepare.boxes` says so."""
    layout, p = get_layout(params.layout), params.prepare
    input_h, input_w = params.backbone.input_size
    if split == "val" and p.boxes == "detections":
        table = instances_from_detections(coco, load_detections(p.detections), ids, layout, input_w / input_h,
                                          p.padding, p.det_score_threshold, p.min_box_area)
    else:
        table = instances_from_gt(coco, ids, layout, aspect=input_w / input_h, padding=p.padding,
                                  min_keypoints=p.min_keypoints)
    subdir = params.data.image_subdirs.get(split)
    return table.assign(file_name=subdir.rstrip("/") + "/" + table.file_name) if subdir else table


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    p = params.prepare
    for split, (source, coco, ids) in split_sources(params).items():
        table = split_table(params, split, coco, ids)
        if not ids or table.empty:
            what = "detections" if split == "val" and p.boxes == "detections" else f"persons with >= {p.min_keypoints} keypoints"
            raise ValueError(
                f"{source}: the {split} split is empty ({len(ids)} images, {len(table)} {what}; "
                f"{len(coco['images'])} images in the file, prepare.val_fraction={p.val_fraction}): "
                "use more images or change the fraction")
        with atomic_path(paths.instances(split)) as tmp:
            table.to_parquet(tmp, index=False)
        write_json(paths.split_annotations(split), subset_annotations(coco, ids), indent=None)
        log.info("%s: %d images, %d person instances -> %s", split, len(ids), len(table), paths.instances(split))
