"""`sgpose prepare`: split the images of `data.annotations` into train/val and write, per split,
the person instance table (parquet) and the split's COCO ground truth (json, what evaluate scores).
"""

from __future__ import annotations

import argparse
import logging

from sgpose.config import Params, Paths
from sgpose.data.coco import instances_from_gt, load_coco, split_images, subset_annotations
from sgpose.io import atomic_path, write_json
from sgpose.keypoints import get_layout

log = logging.getLogger(__name__)


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    layout = get_layout(params.layout)
    source = params.data.annotations
    coco = load_coco(source, layout)
    p = params.prepare
    train_ids, val_ids = split_images([img["id"] for img in coco["images"]], p.val_fraction, p.split_seed)
    input_h, input_w = params.backbone.input_size
    for split, ids in (("train", train_ids), ("val", val_ids)):
        table = instances_from_gt(coco, ids, layout, aspect=input_w / input_h, padding=p.padding,
                                  min_keypoints=p.min_keypoints)
        if not ids or table.empty:
            raise ValueError(
                f"{source}: the {split} split is empty ({len(ids)} images, {len(table)} persons with >= "
                f"{p.min_keypoints} keypoints; {len(coco['images'])} images in all, "
                f"prepare.val_fraction={p.val_fraction}): use more images or change the fraction")
        with atomic_path(paths.instances(split)) as tmp:
            table.to_parquet(tmp, index=False)
        write_json(paths.split_annotations(split), subset_annotations(coco, ids), indent=None)
        log.info("%s: %d images, %d person instances -> %s", split, len(ids), len(table), paths.instances(split))
