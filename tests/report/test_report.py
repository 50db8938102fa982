"""report.paper / tables / figures as functions."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from cache_samples import ATTRS, arrays
from sgpose.cache.writer import write_cache
from sgpose.core.keypoints import COCO
from sgpose.method.guidance import guidance_sequence
from sgpose.report import figures, paper
from sgpose.report.figures import fig2_poses, fig_guidance_sequence
from sgpose.report.tables import PAPER_COLUMN, TABLE1_COLUMNS, table1, to_markdown


def fake_metrics(ap: float) -> dict:
    keys = ["AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"]
    return {k: ap + 0.01 * i for i, k in enumerate(keys)} | {"num_images": 3, "num_instances": 5}


def test_paper_numbers_are_spec_section_6():
    assert {v: ap for v, (_, ap) in paper.TABLE1.items()} == {
        "baseline": 72.3, "A1": 72.8, "A2": 73.0, "A3": 73.2, "A4": 73.3, "ours": 73.7}
    assert paper.TABLE2["HRNet-W48"] == (77.1, 77.6)
    assert paper.FIG5_S_SWEEP == {3: 73.7, 5: 73.7, 8: 73.3}
    assert paper.FIG6_SCHEDULE == {"cosine": 73.7, "linear": 73.4}
    assert paper.TABLE3_CROWDPOSE["ours (HRNet-W48)"] == 77.6
    assert paper.TABLE4_COCO_DET["ViTPose-B"] == 75.8
    assert "quoted" in paper.SOURCE
    assert paper.paper_ap("ours_S5")[1] == 73.7 and paper.paper_ap("ours_S4")[1] is None
    assert paper.paper_ap("ours_linear")[1] == 73.4 and paper.paper_ap("mystery") == ("", None)


def test_table1_rows_order_and_values():
    df = table1({"ours": fake_metrics(0.5), "baseline": fake_metrics(0.4), "ours_S8": fake_metrics(0.3)})
    assert list(df.columns) == TABLE1_COLUMNS
    assert list(df["variant"]) == ["baseline", "A1", "A2", "A3", "A4", "ours"]  # sweeps: Figs. 5-6
    assert df.loc[0, "AP (this run)"] == pytest.approx(40.0)
    assert df.loc[5, "AP50"] == pytest.approx(51.0)
    assert df["AP (this run)"].isna().tolist() == [False, True, True, True, True, False]
    assert list(df[PAPER_COLUMN]) == [72.3, 72.8, 73.0, 73.2, 73.3, 73.7]


def test_markdown_formatter():
    df = table1({"A1": fake_metrics(0.25)})
    md = to_markdown(df).splitlines()
    assert md[0].startswith("| variant | description | AP (this run) |")
    assert md[1] == "|" + "---|" * len(TABLE1_COLUMNS)
    assert md[3].startswith("| A1 | UNet on features only | 25 |") and md[3].endswith("| 72.8 |")
    assert md[2] == "| baseline | backbone heatmaps, no refinement | - | - | - | - | - | - | - | - | 72.3 |"  # + spread, n
    assert len(md) == 8


def test_table1_empty():
    df = table1({})
    assert list(df.columns) == TABLE1_COLUMNS and len(df) == 6 and df["AP (this run)"].isna().all()


@pytest.mark.parametrize("S,schedule", [(3, "cosine"), (5, "linear")])
def test_fig_guidance_sequence(tmp_path, S, schedule):
    size = (32, 24)
    start = COCO.canonical_pose(size)
    pred = start + np.array([4.0, -3.0], dtype=np.float32)
    joint = COCO.index("left_wrist")
    peaks = fig_guidance_sequence(start, pred, joint, S, schedule, 1.0, size, tmp_path / "fig2.png")
    img = mpimg.imread(tmp_path / "fig2.png")
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # not blank
    csv = pd.read_csv(tmp_path / "fig2.csv")
    assert len(csv) == S + 2 and list(csv.columns) == ["t", "peak_value", "peak_x", "peak_y"]
    pd.testing.assert_frame_equal(csv, peaks, check_dtype=False)
    H = guidance_sequence(torch_tensor(start), torch_tensor(pred)[None], S, schedule, 1.0, size)[0, :, joint]
    assert np.allclose(csv["peak_value"], H.amax(dim=(-1, -2)).numpy(), atol=1e-6)
    # t = 0 peaks at the start pose, t = T-1 at the prediction
    assert (csv.loc[0, "peak_x"], csv.loc[0, "peak_y"]) == tuple(np.round(start[joint]).astype(int))
    assert (csv.iloc[-1]["peak_x"], csv.iloc[-1]["peak_y"]) == tuple(np.round(pred[joint]).astype(int))
    assert math.isclose(csv.loc[0, "peak_value"], 1.0, abs_tol=0.2)


def torch_tensor(a):
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float32))


@pytest.mark.parametrize("block", [256, 2])  # the hit in the first block read, or in the second
def test_fig2_uses_the_first_sample_whose_joint_is_detected(tmp_path, monkeypatch, block):
    monkeypatch.setattr(figures, "SCAN_BLOCK", block)
    data = arrays()
    data["heatmaps"] = np.zeros_like(data["heatmaps"])
    data["heatmaps"][2, 9, 7, 5] = 0.9  # left_wrist found in sample 2 only, at (x, y) = (5, 7)
    write_cache(tmp_path / "val.h5", data, ATTRS)
    start = np.zeros((17, 2))
    pose, joint, source = fig2_poses(start, [tmp_path / "none.h5", tmp_path / "val.h5"], 0.2, joint=9)
    assert joint == 9 and pose[9].tolist() == [5.0, 7.0] and source.startswith("val sample 2 of ")
    # right_wrist is missed everywhere: a joint that is present is drawn instead, and the source says so
    pose, joint, source = fig2_poses(start, [tmp_path / "val.h5"], 0.2, joint=10)
    assert joint == 9 and pose[9].tolist() == [5.0, 7.0] and "joint 10 is missed in every sample; joint 9 drawn" in source
    pose, joint, source = fig2_poses(start, [tmp_path / "none.h5"], 0.2, joint=9)
    assert joint == 9 and source.startswith("canonical pose shifted")


def test_fig2_prefers_the_first_cache_where_the_joint_is_present(tmp_path):
    """The controlled backbone's cache comes first: its Y0 has the joint where the trained backbone's misses it."""
    empty, found = arrays(), arrays()
    empty["heatmaps"] = np.zeros_like(empty["heatmaps"])
    found["heatmaps"] = np.zeros_like(found["heatmaps"])
    found["heatmaps"][1, 9, 3, 4] = 0.8
    write_cache(tmp_path / "trained.h5", empty, ATTRS)
    write_cache(tmp_path / "controlled.h5", found, ATTRS)
    pose, joint, source = fig2_poses(np.zeros((17, 2)), [tmp_path / "controlled.h5", tmp_path / "trained.h5"], 0.2, 9)
    assert joint == 9 and pose[9].tolist() == [4.0, 3.0] and source == f"val sample 1 of {tmp_path / 'controlled.h5'}"
