"""The whole DAG, end to end, through both engines (DVC and Snakemake) on a tiny real config:
the four COCO val2017 images of the mirror's fixtures, one epoch each, CPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import MIRROR, require

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e

TINY = {
    "data": {"manifest": "tests/fixtures/tiny_coco_manifest.tsv", "raw_dir": "data/raw",
             "images_dir": "data/raw/fixtures/coco", "annotations": "data/raw/fixtures/coco/test_coco.json"},
    "prepare": {"val_fraction": 0.25},
    "backbone": {"depth": 18, "deconv_channels": 16, "input_size": [96, 64], "heatmap_size": [24, 16]},
    "train_backbone": {"epochs": 1, "batch_size": 8, "lr_steps": []},
    "cache": {"batch_size": 8},
    "refiner": {"base_channels": 8, "time_dim": 16},
    "train_refiner": {"epochs": 1, "batch_size": 8},
}
DOWNSTREAM_OF_REFINER = {"train_refiner@ours", "infer@ours", "evaluate@ours", "report"}


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        base[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def make_repo(dest: Path, overrides: dict) -> Path:
    """A copy of the project's tracked files with tiny params, as a fresh git repo."""
    require(MIRROR / "fixtures" / "coco")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "SGPOSE_MIRROR": str(MIRROR), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def metrics_of(repo: Path) -> dict[str, dict]:
    found = sorted(repo.glob("results/sample/*/*/metrics.json"))
    return {p.parent.name: json.loads(p.read_text()) for p in found}


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("dvc"), TINY)
    run(["dvc", "repro"], repo)
    return repo


def test_dvc_repro_runs_the_whole_dag(dvc_repo):
    metrics = metrics_of(dvc_repo)
    assert set(metrics) == {"baseline", "ours"}
    for m in metrics.values():
        assert 0.0 <= m["AP"] <= 1.0 and m["num_instances"] > 0
    report = dvc_repo / "results" / "report"
    for name in ("table1.csv", "table1.md", "fig2_guidance.png", "fig2_guidance.csv", "index.html"):
        assert (report / name).stat().st_size > 0, name
    assert not list(dvc_repo.rglob("*.tmp-*")), "a temporary file was left behind"


def test_dvc_repro_again_changes_nothing_and_a_refiner_param_reruns_only_the_refiner(dvc_repo):
    again = run(["dvc", "repro"], dvc_repo)
    assert "Running stage" not in again
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["train_refiner"]["epochs"] = 2
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = set(re.findall(r"Running stage '([^']+)'", run(["dvc", "repro"], dvc_repo)))
    assert "train_refiner@ours" in ran
    assert ran <= DOWNSTREAM_OF_REFINER, f"stages upstream of the refiner re-ran: {ran - DOWNSTREAM_OF_REFINER}"


def test_snakemake_runs_the_same_dag(dvc_repo, tmp_path):
    repo = make_repo(tmp_path, TINY)
    run(["snakemake", "--cores", "2"], repo)
    snake, dvc = metrics_of(repo), metrics_of(dvc_repo)
    assert set(snake) == set(dvc) == {"baseline", "ours"}
    for variant in snake:
        assert set(snake[variant]) == set(dvc[variant])
    assert (repo / "results" / "report" / "index.html").is_file()
    assert "Nothing to be done" in run(["snakemake", "--cores", "2", "-n"], repo)
