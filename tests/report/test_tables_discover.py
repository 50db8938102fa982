"""Tables 2-4, run discovery, backbone naming and the sweep naming of Figs. 5-6."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sgpose.config.selection import load_params
from sgpose.report import tables
from sgpose.report.build import sweep_points
from sgpose.report.discover import Run, find_runs, is_crowdpose, paper_backbone_name, select, uses_detections

REPO = Path(__file__).resolve().parents[2]


def m(ap: float, **extra) -> dict:
    return {"AP": ap, "AP50": ap + 0.1, "AP75": ap, "APM": ap, "APL": ap, "AR": ap} | extra


def test_find_runs(tmp_path):
    metrics = tmp_path / "metrics"
    for rel, splits in [("coco/sb_r50/ours", ("val", "val_det")), ("coco/sb_r50/baseline", ("val",)),
                        ("crowdpose/hrnet_w48/ours", ("val",))]:
        (metrics / rel).parent.mkdir(parents=True, exist_ok=True)
        (metrics / f"{rel}.json").write_text(json.dumps({s: m(0.5) for s in splits}))
    (metrics / "coco/sb_r50/A2.json").write_text("{broken")  # skipped with a warning
    (metrics / "coco/sb_r50/A3.json").write_text(json.dumps({"val": {"no": "AP"}}))  # not metrics: ignored
    runs = find_runs(tmp_path)
    assert [(r.dataset, r.backbone, r.variant, r.split) for r in runs] == [
        ("coco", "sb_r50", "baseline", "val"), ("coco", "sb_r50", "ours", "val"), ("coco", "sb_r50", "ours", "val_det"),
        ("crowdpose", "hrnet_w48", "ours", "val")]
    assert select(runs, backbone="sb_r50", split="val_det") == [runs[2]]


def test_dataset_kinds():
    assert is_crowdpose(Run("x", "b", "ours", "val", m(0.1, AP_easy=1, AP_medium=1, AP_hard=1)))
    assert not is_crowdpose(Run("crowdpose_named", "b", "ours", "val", m(0.1)))  # the metrics say, not the name
    assert uses_detections(Run("coco", "b", "ours", "val_det", m(0.1)))
    assert not uses_detections(Run("coco_det", "b", "ours", "val", m(0.1)))


@pytest.mark.parametrize("dir_name,attrs,expected", [
    ("anything", {"backbone": {"arch": "hrnet", "width": 48}}, "HRNet-W48"),
    ("anything", {"backbone": {"arch": "simple_baseline", "depth": 101}}, "SimpleBaseline-R101"),
    ("sb_r50", None, "SimpleBaseline-R50"), ("hrnet_w32", {}, "HRNet-W32"), ("mystery", None, None)])
def test_paper_backbone_name(dir_name, attrs, expected):
    assert paper_backbone_name(dir_name, attrs) == expected


def test_table2():
    bbs = [{"dir": "sb_r50", "paper_name": "SimpleBaseline-R50", "input_size": [256, 192],
            "metrics": {"baseline": m(0.7), "baseline_dark": m(0.715), "ours": m(0.72)}},
           {"dir": "tiny", "paper_name": None, "input_size": None, "metrics": {"baseline": m(0.1)}}]
    df = tables.table2(bbs)
    assert list(df["backbone"]) == [*tables.paper.TABLE2, "tiny"]
    r50 = df.iloc[0]
    assert (r50["directory"], r50["input"]) == ("sb_r50", "256x192")
    assert (r50["baseline AP (this run)"], r50["ours AP (this run)"], r50["gain (this run)"]) == pytest.approx((70, 72, 2))
    assert (r50["baseline + DARK AP (this run)"], r50["gain over baseline + DARK (this run)"]) == pytest.approx((71.5, 0.5))
    assert np.isnan(df.iloc[-1]["baseline + DARK AP (this run)"]) and np.isnan(df.iloc[-1]["gain over baseline + DARK (this run)"])
    assert (r50["baseline AP (paper, quoted)"], r50["gain (paper, quoted)"]) == pytest.approx((72.4, 1.3))
    assert np.isnan(df.iloc[1]["ours AP (this run)"]) and df.iloc[1]["directory"] == "-"
    assert np.isnan(df.iloc[-1]["ours AP (this run)"]) and np.isnan(df.iloc[-1]["ours AP (paper, quoted)"])


def test_tables_3_and_4():
    runs = [Run("crowdpose", "sb_r152", "ours", "val", m(0.6, AP_easy=0.7, AP_medium=0.6, AP_hard=0.4)),
            Run("crowdpose", "sb_r152", "baseline", "val", m(0.5)), Run("crowdpose", "sb_r152", "A1", "val", m(0.55)),
            Run("crowdpose", "sb_r152", "baseline_dark", "val", m(0.52))]
    t3 = tables.table3(runs)
    assert list(t3.columns) == ["method", "source", "AP", "AP50", "AP75", "AP(E)", "AP(M)", "AP(H)"]
    quoted = t3[t3["source"] == tables.QUOTED]
    assert len(quoted) == len(tables.paper.TABLE3_CROWDPOSE) and quoted["AP50"].isna().all()
    ours = t3[t3["source"] != tables.QUOTED]
    assert list(ours["method"]) == ["sb_r152 baseline", "sb_r152 baseline_dark", "sb_r152 A1", "sb_r152 ours"]  # Table 1 order
    ours = ours[ours["method"].isin(["sb_r152 baseline", "sb_r152 ours"])]
    assert ours.iloc[1][["AP", "AP(E)", "AP(H)"]].tolist() == pytest.approx([60, 70, 40])
    assert np.isnan(ours.iloc[0]["AP(E)"])  # never invented
    undefined = tables.table3([Run("crowdpose", "b", "ours", "val", m(0.1, AP_easy=-1.0, AP_medium=0.2, AP_hard=-1.0))])
    assert undefined.iloc[-1][["AP(E)", "AP(H)"]].isna().all()  # COCOeval's -1: no such images, shown as '-'
    assert undefined.iloc[-1]["AP(M)"] == pytest.approx(20.0)
    t4 = tables.table4([])
    assert len(t4) == len(tables.paper.TABLE4_COCO_DET) and (t4["source"] == tables.QUOTED).all()
    md = tables.to_markdown(t4)
    assert "| ViTPose-B | paper (quoted) | 75.8 | - |" in md


def test_sweep_points():
    params = load_params(REPO / "params.yaml", ["guidance.S=3", "guidance.schedule=cosine"])
    metrics = {"ours": {"AP": 0.5}, "ours_S5": {"AP": 0.4}, "ours_S8": {"AP": 0.3}, "ours_linear": {"AP": 0.45},
               "ours_Sx": {"AP": 0.1}, "A1": {"AP": 0.2}}
    by_s, by_schedule = sweep_points(metrics, params)
    assert by_s == pytest.approx({3: 50.0, 5: 40.0, 8: 30.0})
    assert by_schedule == pytest.approx({"cosine": 50.0, "linear": 45.0})
    assert sweep_points({}, params) == ({}, {})


def test_table_writers(tmp_path):
    df = tables.table1({"ours": m(0.5)})
    tables.write_table(df, tmp_path / "t.csv", tmp_path / "t.md", "caption here")
    assert pd.read_csv(tmp_path / "t.csv").shape == (6, len(tables.TABLE1_COLUMNS))
    assert (tmp_path / "t.md").read_text().startswith("caption here\n\n| variant |")
