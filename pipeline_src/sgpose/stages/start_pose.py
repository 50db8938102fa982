"""`sgpose start_pose`: the mean training pose in crop (heatmap-pixel) coordinates, the data-driven
start pose P_start of `guidance.start_pose: mean` (docs/method.md §2).

Averages each joint over the training cache's plain crops (view 0) where it is labelled and inside the map
(`target_weight` > 0, the same joints the losses train on); a joint never seen falls back to the
canonical pose. Writes results/<dataset>/<backbone>/start_pose.json.
"""

from __future__ import annotations

import logging

import torch

from sgpose.cache.reader import CacheBatches
from sgpose.config.selection import Params
from sgpose.core.io import write_json
from sgpose.core.keypoints import get_layout
from sgpose.method.guidance import mean_pose
from sgpose.stages import Run

log = logging.getLogger(__name__)


def start_pose_record(params: Params, joints, weight) -> dict:
    """The JSON record: pose (K, 2), per-joint counts, the joints that fell back to canonical."""
    layout = get_layout(params.layout)
    size = tuple(params.backbone.heatmap_size)
    canonical = torch.from_numpy(layout.canonical_pose(size))
    pose, count = mean_pose(torch.as_tensor(joints), torch.as_tensor(weight), canonical)
    fallback = [name for name, c in zip(layout.names, count.tolist()) if c == 0]
    return {"layout": params.layout, "heatmap_size": list(size), "pose": pose.tolist(),
            "counts": count.tolist(), "canonical_fallback": fallback}


def main(run: Run) -> None:
    params, paths = run.params, run.paths
    data = CacheBatches(paths.cache("train"), keys=["joints", "target_weight"], prefixes=(), preload=True)
    plain = slice(None, None, data.views)  # view 0 of every instance: the unaugmented crops
    record = start_pose_record(params, data.memory["joints"][plain], data.memory["target_weight"][plain])
    write_json(paths.start_pose, record)
    log.info("mean start pose from %d samples -> %s (canonical fallback: %s)", len(data) // data.views,
             paths.start_pose, record["canonical_fallback"] or "none")
