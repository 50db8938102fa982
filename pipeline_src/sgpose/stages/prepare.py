"""`sgpose prepare --dataset D`: per split, the person instance table (parquet) and the split's COCO
ground truth (json, what evaluate scores), in `results/<dataset>/prepared/`.

Splits: with `data.val_annotations` the official ones (train = `data.annotations`, val = that file:
COCO train2017/val2017, CrowdPose train/val); without it, the images of `data.annotations` split by
`prepare.val_fraction`. Boxes: train and val from ground truth; when `prepare.detections` names a
detection file, also `val_det`: the val images' detector boxes (sgpose.data.detections), scored
against val's ground truth (Table 4). Crops have the dataset's `prepare.aspect_ratio`.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from sgpose.config.schema import DET_SPLIT, SPLITS, gt_split
from sgpose.config.selection import Params
from sgpose.core.io import atomic_path, write_json
from sgpose.core.keypoints import get_layout
from sgpose.data.coco import instances_from_gt, load_coco, split_images, subset_annotations
from sgpose.data.detections import instances_from_detections, load_detections
from sgpose.stages import Run

log = logging.getLogger(__name__)


def split_sources(params: Params, wanted: list[str]) -> dict[str, tuple[str, dict, list[int]]]:
    """split -> (annotation file, its COCO dict, the split's image ids) for the `wanted` splits; val_det
    shares val's. Only the files those splits need are parsed (full COCO train's is ~240 MB)."""
    layout, data, p = get_layout(params.layout), params.data, params.prepare
    out = {}
    if data.val_annotations:  # official splits: a file each
        for split, path in (("train", data.annotations), ("val", data.val_annotations)):
            if split in wanted or (split == "val" and DET_SPLIT in wanted):
                coco = load_coco(path, layout)
                out[split] = (path, coco, [int(i["id"]) for i in coco["images"]])
    else:  # one file, split by image
        coco = load_coco(data.annotations, layout)
        train_ids, val_ids = split_images([img["id"] for img in coco["images"]], p.val_fraction, p.split_seed)
        out = {"train": (data.annotations, coco, train_ids), "val": (data.annotations, coco, val_ids)}
    if DET_SPLIT in wanted:
        out[DET_SPLIT] = (p.detections, *out["val"][1:])
    return {split: out[split] for split in wanted}


def split_table(params: Params, split: str, coco: dict, ids: list[int]) -> pd.DataFrame:
    """The split's instances: ground-truth boxes, or for val_det the detector's boxes."""
    layout, p = get_layout(params.layout), params.prepare
    if split == DET_SPLIT:
        table = instances_from_detections(coco, load_detections(p.detections), ids, layout, p.aspect_ratio,
                                          p.padding, p.det_score_threshold, p.min_box_area)
    else:
        table = instances_from_gt(coco, ids, layout, aspect=p.aspect_ratio, padding=p.padding,
                                  min_keypoints=p.min_keypoints)
    subdir = params.data.image_subdirs.get(gt_split(split))
    return table.assign(file_name=subdir.rstrip("/") + "/" + table.file_name) if subdir else table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", action="append", choices=SPLITS, dest="splits",
                        help="only this split (repeatable; default: train, val and, with detections, val_det)")


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
    p = params.prepare
    wanted = getattr(args, "splits", None)
    if wanted and DET_SPLIT in wanted and not p.detections:
        raise ValueError(f"--split val_det: datasets.{params.dataset}.prepare.detections names no detection file")
    wanted = wanted or ["train", "val", *([DET_SPLIT] if p.detections else [])]
    for split, (source, coco, ids) in split_sources(params, wanted).items():
        table = split_table(params, split, coco, ids)
        if split == DET_SPLIT and table.empty:
            raise ValueError(f"{source}: no detection box on the {len(ids)} val images passes prepare.det_score_threshold "
                             f"{p.det_score_threshold} and min_box_area {p.min_box_area} (a detection file of "
                             "other images?)")
        if not ids or table.empty:
            raise ValueError(
                f"{source}: the {split} split is empty ({len(ids)} images, {len(table)} persons with >= "
                f"{p.min_keypoints} keypoints; {len(coco['images'])} images in the file, "
                f"prepare.val_fraction={p.val_fraction}): use more images or change the fraction")
        with atomic_path(paths.instances(split)) as tmp:
            table.to_parquet(tmp, index=False)
        if split != DET_SPLIT:
            write_json(paths.split_annotations(split), subset_annotations(coco, ids), indent=None)
        log.info("%s: %d images, %d person instances -> %s", split, len(ids), len(table), paths.instances(split))
