"""The controlled-error benchmark in the report: its own Table 1 per controlled backbone (with the
sweeps and the gain over its baseline, no paper column), and never a row of Tables 2-4."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from sgpose.config import Paths, load_params
from sgpose.report import build, controlled, tables
from sgpose.report.discover import find_runs

ROOT = Path(__file__).resolve().parents[2]


def with_controlled(tmp_path: Path, ablation: list[str] | None = None) -> Path:
    """The repo's params.yaml plus sb_r18_perturbed (features of sb_r18), optionally in the ablation."""
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    real = tree["backbones"]["sb_r18"]
    tree["backbones"]["sb_r18_perturbed"] = {"dataset": "sample", "arch": "perturbed", "features_from": "sb_r18",
                                             "input_size": real["input_size"], "heatmap_size": real["heatmap_size"]}
    tree["ablation"]["backbones"] = ablation
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(tree))
    return tmp_path / "p.yaml"


def write_metrics(root, backbone: str, aps: dict[str, float], split: str = "val") -> None:
    out = root / "results" / "metrics" / "sample" / backbone
    out.mkdir(parents=True, exist_ok=True)
    for variant, ap in aps.items():
        (out / f"{variant}.json").write_text(json.dumps({split: {"AP": ap, "AP50": ap, "AP75": ap, "APM": ap,
                                                                 "APL": ap, "AR": ap}}))


def test_controlled_backbones_get_their_own_table_1_and_stay_out_of_table_2(tmp_path):
    params = load_params(with_controlled(tmp_path, ablation=["sb_r18", "sb_r18_perturbed"]))
    paths = Paths(params, tmp_path)
    write_metrics(tmp_path, "sb_r18", {"baseline": 0.01, "ours": 0.02})
    write_metrics(tmp_path, "sb_r18_perturbed", {"baseline": 0.65, "A1": 0.6, "ours": 0.7, "ours_S5": 0.71})
    runs = find_runs(paths.results)
    found = controlled.find(params, paths, runs)
    assert [(c.backbone, c.arch, c.features_from) for c in found] == [("sb_r18_perturbed", "perturbed", "sb_r18")]
    sections = build.table_sections(params, paths, runs, paths.report)
    assert [s.key for s in sections] == ["table1", "table1_sample_sb_r18_perturbed", "table2", "table3", "table4"]
    bench = sections[1]
    assert "controlled-error benchmark" in bench.text and "NOT the paper's setting" in bench.text
    df = bench.table.set_index("variant")
    assert tables.PAPER_COLUMN not in df.columns
    assert list(df.index) == ["baseline", "A1", "A2", "A3", "A4", "ours", "ours_S5"]
    assert df.loc["ours", "AP (this run)"] == 70.0 and df.loc["ours", controlled.GAIN] == 5.0
    assert df.loc["A1", controlled.GAIN] == -5.0 and math.isnan(df.loc["A2", controlled.GAIN])
    assert (paths.report / "table1_sample_sb_r18_perturbed.md").read_text().startswith("Table 1, controlled")
    t2 = sections[2].table
    assert "sample/sb_r18_perturbed" not in set(t2["directory"]) and "sample/sb_r18" in set(t2["directory"])
    primary = sections[0].table.set_index("variant")
    assert primary.loc["ours", "AP (this run)"] == 2.0  # the paper-setting Table 1 is the primary backbone's


def test_without_controlled_runs_the_report_is_unchanged(tmp_path):
    params = load_params(with_controlled(tmp_path))
    paths = Paths(params, tmp_path)
    write_metrics(tmp_path, "sb_r18", {"baseline": 0.01, "ours": 0.02})
    sections = build.table_sections(params, paths, find_runs(paths.results), paths.report)
    assert [s.key for s in sections] == ["table1", "table2", "table3", "table4"]
