"""Per-instance views of a run: each evaluated person's ground truth (the prepared COCO annotations), every
variant's prediction (the predictions file the DAG wrote), its OKS and its per-joint pixel errors; what
`sgpose show` and `sgpose compare` read. Nothing is recomputed: the predictions are the files `evaluate`
scored, in the cache's order (one result per cached instance on a ground-truth-box split).

OKS here is COCO's per-instance similarity against the instance's own ground truth (its annotation's area as
the scale, its labelled joints): what COCOeval computes for the matched pair, without the matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sgpose.cache.reader import open_cache
from sgpose.config.paths import Paths
from sgpose.core.errors import ChoiceError, InputError
from sgpose.core.io import read_json
from sgpose.report.evolution import oks

DETECTION_SPLIT = "val_det"


@dataclass
class Instances:
    """The instances of one split in the cache's order: ids, crop geometry, ground truth in image pixels."""

    split: str
    ann_id: np.ndarray  # (N,)
    image_id: np.ndarray  # (N,)
    center: np.ndarray  # (N, 2)
    scale: np.ndarray  # (N, 2)
    gt: np.ndarray  # (N, K, 2) image pixels
    vis: np.ndarray  # (N, K) > 0 where labelled
    area: np.ndarray  # (N,) the annotation's area (OKS scale)

    def __len__(self) -> int:
        return len(self.ann_id)

    def index(self, ann_id: int) -> int:
        """The cache row of annotation `ann_id` (ValueError naming the split when absent)."""
        found = np.flatnonzero(self.ann_id == int(ann_id))
        if not len(found):
            raise ChoiceError(f"annotation id {ann_id} is not in the {self.split} split "
                             f"({len(self)} instances, ids {int(self.ann_id.min())}..{int(self.ann_id.max())})")
        return int(found[0])


def load_instances(paths: Paths, split: str = "val") -> Instances:
    """The split's instances: ids and crops from its cache, ground truth from the prepared annotations."""
    if split == DETECTION_SPLIT:
        raise ChoiceError(f"--split {split}: split {split} holds detector boxes, not annotated persons: per-instance views need a "
                         "ground-truth-box split (val)")
    cache = paths.cache(split)
    with open_cache(cache) as h5:
        meta = {k: h5[f"meta/{k}"][()] for k in ("ann_id", "image_id", "center", "scale")}
    gt_file = paths.split_annotations(split)
    if not gt_file.is_file():
        raise FileNotFoundError(f"{gt_file}: no ground truth (run `sgpose prepare`)")
    anns = {int(a["id"]): a for a in read_json(gt_file)["annotations"]}
    missing = [int(a) for a in meta["ann_id"] if int(a) not in anns]
    if missing:
        raise InputError(gt_file, f"has no annotation {missing[0]} of {cache} ({len(missing)} missing): "
                         "rerun prepare and cache")
    kps = np.array([anns[int(a)]["keypoints"] for a in meta["ann_id"]], dtype=np.float64).reshape(len(meta["ann_id"]), -1, 3)
    area = np.array([float(anns[int(a)].get("area", 0.0)) for a in meta["ann_id"]])
    return Instances(split, meta["ann_id"].astype(np.int64), meta["image_id"].astype(np.int64),
                     np.asarray(meta["center"], dtype=np.float64), np.asarray(meta["scale"], dtype=np.float64),
                     kps[..., :2], kps[..., 2], area)


def load_predictions(path: str | Path, inst: Instances) -> tuple[np.ndarray, np.ndarray]:
    """(joints (N, K, 2) image pixels, scores (N, K)) of a predictions file, checked to be one result per
    cached instance in the cache's order (the same images); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no predictions here (run `sgpose infer` for this variant and split)")
    results = read_json(path)
    if not isinstance(results, list) or len(results) != len(inst):
        raise InputError(path, f"holds {len(results) if isinstance(results, list) else 'no list of'} results, the "
                         f"{inst.split} cache {len(inst)} instances: not this split's predictions")
    image_ids = np.array([int(r["image_id"]) for r in results])
    if (image_ids != inst.image_id).any():
        row = int(np.flatnonzero(image_ids != inst.image_id)[0])
        raise InputError(path, f"result {row} is of image {image_ids[row]}, the cache's instance {row} of image "
                         f"{inst.image_id[row]}: not in the cache's order")
    kp = np.array([r["keypoints"] for r in results], dtype=np.float64).reshape(len(results), -1, 3)
    return kp[..., :2], kp[..., 2]


def instance_oks(joints: np.ndarray, inst: Instances, sigmas) -> np.ndarray:
    """OKS (N,) of each instance's prediction against its own ground truth; NaN where none is labelled."""
    return oks(joints, inst.gt, inst.vis, inst.area, sigmas)


def joint_errors(joints: np.ndarray, inst: Instances) -> np.ndarray:
    """Distance to ground truth (N, K) in image pixels; NaN where the joint is not labelled."""
    d = np.linalg.norm(joints - inst.gt, axis=-1)
    return np.where(inst.vis > 0, d, np.nan)


def rank(scores: np.ndarray, n: int, lowest: bool) -> np.ndarray:
    """Rows of the `n` lowest (or highest) finite scores, in that order."""
    valid = np.flatnonzero(np.isfinite(scores))
    order = valid[np.argsort(scores[valid] if lowest else -scores[valid], kind="stable")]
    return order[:n]


def cache_row(h5: h5py.File, index: int) -> dict[str, np.ndarray]:
    """One cached instance as arrays: Y0, its features, the crop's meta (what the refiner reads)."""
    feats = sorted((k for k in h5["feat"]), key=int) if "feat" in h5 else []
    return {"heatmaps": h5["heatmaps"][index:index + 1].astype(np.float32),
            "feat": [h5[f"feat/{k}"][index:index + 1].astype(np.float32) for k in feats]}
