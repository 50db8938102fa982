"""`sgpose report` through the CLI on fake metrics files in a tmp results/ tree."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import yaml
from sgpose.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp dir with the repo's params.yaml; returns (root, params dict, backbone results dir)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    # the parser imports every stage module; keep this test independent of the other stages
    return tmp_path, params, tmp_path / "results" / params["dataset"] / params["backbone"]["name"]


def write_metrics(bb_dir: Path, variant: str, ap: float) -> None:
    keys = ["AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"]
    m = {k: ap for k in keys} | {"AP50": ap + 0.1, "num_images": 4, "num_instances": 9, "variant": variant}
    (bb_dir / variant).mkdir(parents=True, exist_ok=True)
    (bb_dir / variant / "metrics.json").write_text(json.dumps(m))


def test_report_tables_figure_index(workdir):
    root, params, bb_dir = workdir
    for variant, ap in [("ours", 0.55), ("baseline", 0.5), ("A2", 0.52)]:
        write_metrics(bb_dir, variant, ap)
    (bb_dir / "A3").mkdir()  # a variant without metrics yet: no row
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    out = root / "results" / "report"
    df = pd.read_csv(out / "table1.csv")
    assert list(df["variant"]) == ["baseline", "A2", "ours"]
    assert list(df["AP (this run)"]) == pytest.approx([50.0, 52.0, 55.0])
    assert list(df["AP50"]) == pytest.approx([60.0, 62.0, 65.0])
    assert list(df["paper AP (quoted)"]) == [72.3, 73.0, 73.7]
    md = (out / "table1.md").read_text()
    assert "| ours | graduated structure guidance (full method) | 55 |" in md and "quoted" in md
    img = mpimg.imread(out / "fig2_guidance.png")
    assert img[..., :3].std() > 0.05
    T = params["guidance"]["S"] + 2
    assert len(pd.read_csv(out / "fig2_guidance.csv")) == T
    page = (out / "index.html").read_text()
    assert 'src="fig2_guidance.png"' in page and "<table" in page and "left_wrist" in page
    assert "shifted" in page  # no val cache: fallback pose
    assert not list(out.glob("*.tmp-*"))


def test_report_uses_val_cache(workdir):
    root, params, bb_dir = workdir
    write_metrics(bb_dir, "baseline", 0.5)
    h, w = params["backbone"]["heatmap_size"]
    heatmaps = np.zeros((2, 17, h, w), dtype=np.float16)
    heatmaps[0, :, 5, 7] = 1.0  # every joint of sample 0 at x=7, y=5
    (bb_dir / "cache").mkdir(parents=True)
    with h5py.File(bb_dir / "cache" / "val.h5", "w") as f:
        f["heatmaps"] = heatmaps
    assert cli_main(["report", "--params", "params.yaml", "--set", "guidance.S=5"]) == 0
    peaks = pd.read_csv(root / "results" / "report" / "fig2_guidance.csv")
    assert len(peaks) == 7
    assert (peaks.iloc[-1]["peak_x"], peaks.iloc[-1]["peak_y"]) == (7, 5)
    assert "val.h5" in (root / "results" / "report" / "index.html").read_text()


def test_report_without_metrics_writes_empty_table(workdir):
    root, params, bb_dir = workdir
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    assert len(pd.read_csv(root / "results" / "report" / "table1.csv")) == 0


def test_report_unknown_joint(workdir, capsys):
    assert cli_main(["report", "--params", "params.yaml", "--set", "report.fig2_joint=tail"]) == 1
    assert "tail" in capsys.readouterr().err
