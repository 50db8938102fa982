"""The whole DAG, end to end, through both engines (DVC and Snakemake) on a tiny real config: the
four COCO val2017 images of the mirror's fixtures (ground-truth and detection boxes) and the two
CrowdPose fixture images, one backbone each, the ablation with one paper variant and one sweep, a
sharded training split; one epoch everywhere, CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml
from conftest import MIRROR, copy_project, require

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e

FIX = "data/raw/fixtures"
TINY_BACKBONE = {"depth": 18, "deconv_channels": 16, "input_size": [64, 64], "heatmap_size": [16, 16]}
GRID = {  # replaces the sample's experiment grid
    "datasets": {
        "tiny": {"layout": "coco",
                 "data": {"manifest": "tests/fixtures/tiny_coco_manifest.tsv", "raw_dir": "data/raw",
                          "images_dir": f"{FIX}/coco", "annotations": f"{FIX}/coco/test_coco.json"},
                 "prepare": {"val_fraction": 0.25, "aspect_ratio": 1.0, "det_score_threshold": 0.3,
                             "detections": f"{FIX}/coco/test_coco_det_AP_H_56.json"}},
        "tiny_crowd": {"layout": "crowdpose",
                       "data": {"manifest": "data/sample/crowdpose.tsv", "raw_dir": "data/raw",
                                "images_dir": f"{FIX}/crowdpose", "annotations": f"{FIX}/crowdpose/test_crowdpose.json"},
                       "prepare": {"val_fraction": 0.5, "aspect_ratio": 1.0}}},
    "backbones": {"r18": {"dataset": "tiny", **TINY_BACKBONE}, "cp": {"dataset": "tiny_crowd", **TINY_BACKBONE}},
    "evals": {"r18": ["val", "val_det"], "cp": ["val"]},
    "ablation": {"dataset": "tiny", "backbone": "r18", "variants": ["A1", "ours_S2"]},
}
SECTIONS = {  # merged into the sample's sections
    "train_backbone": {"epochs": 1, "batch_size": 8, "lr_steps": []},
    "cache": {"batch_size": 8, "shards": {"train": 2}},
    "refiner": {"base_channels": 8, "time_dim": 16},
    "train_refiner": {"epochs": 1, "batch_size": 8},
}
EVALUATIONS = {("tiny", "r18", v) for v in ("baseline", "ours", "A1", "ours_S2")} | {
    ("tiny_crowd", "cp", v) for v in ("baseline", "ours")}
REFINER_AND_AFTER = re.compile(r"^(train_refiner|infer|evaluate)\.|^report$")


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        base[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def make_repo(dest: Path) -> Path:
    """A copy of the project with the tiny grid, as a fresh git repo."""
    require(MIRROR / "fixtures" / "coco")
    require(MIRROR / "fixtures" / "crowdpose")
    copy_project(dest)
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), SECTIONS) | GRID
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["sgpose", "dag"], dest)  # dvc.yaml for the tiny grid
    return dest


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "SGPOSE_MIRROR": str(MIRROR), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def metrics_of(repo: Path) -> dict[tuple[str, str, str], dict]:
    found = sorted(repo.glob("results/metrics/*/*/*.json"))
    return {(p.parts[-3], p.parts[-2], p.stem): json.loads(p.read_text()) for p in found}


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("dvc"))
    run(["dvc", "repro"], repo)
    return repo


def test_dvc_repro_runs_the_whole_dag(dvc_repo):
    metrics = metrics_of(dvc_repo)
    assert set(metrics) == EVALUATIONS
    for (ds, bb, variant), m in metrics.items():
        # baseline and ours on the backbone's evals, the ablation's variants on val (Params.evals_of)
        assert set(m) == ({"val", "val_det"} if bb == "r18" and variant in ("baseline", "ours") else {"val"}), \
            (bb, variant)
        for split in m.values():
            assert 0.0 <= split["AP"] <= 1.0 and split["num_instances"] > 0
    assert "AP_hard" in metrics[("tiny_crowd", "cp", "ours")]["val"]  # CrowdPose metrics
    assert len(list((dvc_repo / "results/tiny/r18/cache/train.shards").iterdir())) == 2
    report = dvc_repo / "results" / "report"
    tables = {n: pd.read_csv(report / f"{n}.csv") for n in ("table1", "table2", "table3", "table4")}
    assert tables["table1"].variant.tolist() == ["baseline", "A1", "A2", "A3", "A4", "ours"]
    assert tables["table1"]["AP (this run)"].notna().tolist() == [True, True, False, False, False, True]
    assert tables["table2"].directory.tolist()[-1] == "tiny/r18"  # after the paper's five backbones
    this_run = {n: t[t.source.str.startswith("this run")].method.tolist() for n, t in tables.items() if "source" in t}
    assert this_run == {"table3": ["cp baseline", "cp ours"],
                        "table4": ["r18 baseline", "r18 ours"]}
    for png in ("fig2_guidance", "fig4_ablation", "fig5_steps", "fig6_schedule", "fig7_corrected", "fig8_recovered",
                "fig9_hardest", "training_curves"):
        img = mpimg.imread(report / f"{png}.png")
        assert img.shape[0] > 100 and img[..., :3].std() > 0.03, f"{png}.png is blank"
        assert (report / f"{png}.csv").is_file(), png
    assert (report / "index.html").stat().st_size > 0 and (report / "provenance.json").is_file()
    assert not list(dvc_repo.rglob("*.tmp-*")), "a temporary file was left behind"


def test_dvc_repro_again_changes_nothing_and_a_refiner_param_reruns_only_the_refiners(dvc_repo):
    again = run(["dvc", "repro"], dvc_repo)
    assert "Running stage" not in again
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["train_refiner"]["epochs"] = 2
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = set(re.findall(r"Running stage '([^']+)'", run(["dvc", "repro"], dvc_repo)))
    assert {f"train_refiner.{ds}.{bb}.{v}" for ds, bb, v in EVALUATIONS if v != "baseline"} <= ran
    upstream = {s for s in ran if not REFINER_AND_AFTER.match(s) or "baseline" in s}
    assert not upstream, f"stages upstream of the refiners re-ran: {upstream}"


def test_snakemake_runs_the_same_dag(dvc_repo, tmp_path):
    repo = make_repo(tmp_path)
    run(["snakemake", "--profile", "workflow/profiles/local"], repo)
    snake, dvc = metrics_of(repo), metrics_of(dvc_repo)
    assert set(snake) == set(dvc) == EVALUATIONS
    for key in snake:
        assert set(snake[key]) == set(dvc[key]) and all(set(snake[key][s]) == set(dvc[key][s]) for s in snake[key])
    assert (repo / "results" / "report" / "index.html").is_file()
    assert len(list((repo / "results/tiny/r18/cache/train.shards").iterdir())) == 2  # scattered, gathered
    assert "Nothing to be done" in run(["snakemake", "--profile", "workflow/profiles/local", "-n"], repo)
