"""`sgpose start_pose`: the mean training pose from the train cache, and its use as P_start."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from sgpose.config.paths import Paths
from sgpose.config.selection import load_params
from sgpose.core.keypoints import COCO
from sgpose.method.refine import guidance_spec
from sgpose.stages import Run
from sgpose.stages.start_pose import main, start_pose_record
from synthetic_cache import write_synthetic_cache

REPO = Path(__file__).resolve().parents[2]


def test_record_averages_visible_joints_and_falls_back_to_canonical():
    params = load_params(REPO / "params.yaml")
    joints = np.zeros((2, 17, 3))
    joints[:, :, :2] = [[[2.0, 4.0]] * 17, [[4.0, 10.0]] * 17]
    weight = np.ones((2, 17))
    weight[1, 0] = 0  # nose only seen in sample 0
    weight[:, 16] = 0  # right ankle never seen
    rec = start_pose_record(params, joints, weight)
    assert rec["pose"][0] == [2.0, 4.0] and rec["pose"][1] == [3.0, 7.0]
    canonical = COCO.canonical_pose(tuple(params.backbone.heatmap_size))
    assert rec["pose"][16] == pytest.approx(canonical[16].tolist())
    assert rec["canonical_fallback"] == ["right_ankle"] and rec["counts"][:2] == [1, 2]


def test_stage_writes_the_artifact_that_mean_start_pose_reads(tmp_path):
    params = load_params(REPO / "params.yaml", ["guidance.start_pose=mean"])
    paths = Paths(params, tmp_path)
    with pytest.raises(FileNotFoundError, match="start_pose.json"):
        guidance_spec(params, "ours", paths.start_pose)
    arrays = write_synthetic_cache(paths.cache("train"), n=5)
    main(Run(Namespace(), (params, paths)))
    want = arrays["joints"][..., :2].mean(axis=0)
    spec = guidance_spec(params, "ours", paths.start_pose)
    torch.testing.assert_close(spec.start, torch.tensor(want, dtype=torch.float32))
    record = json.loads(paths.start_pose.read_text())
    record["heatmap_size"] = [64, 48]
    paths.start_pose.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="rerun `sgpose start_pose`"):
        guidance_spec(params, "ours", paths.start_pose)
