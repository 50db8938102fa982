"""The full paper grid planned without running anything: Snakemake's dry run through the SLURM
profile (every job with its resources; no cluster needed) and DVC's stage list of the same grid."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_project
from sgpose.config.selection import read_params_file

ROOT = Path(__file__).resolve().parents[1]
PAPER = read_params_file(ROOT / "profiles" / "paper.yaml")


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory) -> Path:
    """The project with profiles/paper.yaml as params.yaml (what `sgpose profile paper` does)."""
    dest = copy_project(tmp_path_factory.mktemp("paper"))
    shutil.copy(ROOT / "profiles" / "paper.yaml", dest / "params.yaml")
    return dest


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def jobs(plan: str) -> dict[str, list[str]]:
    """rule -> the `resources:` line of each of its planned jobs."""
    out: dict[str, list[str]] = {}
    for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^\[|^rule |\Z)", plan, flags=re.M | re.S):
        res = re.search(r"^\s+resources: (.*)$", body, flags=re.M)
        out.setdefault(rule, []).append(res.group(1) if res else "")
    return out


def test_snakemake_plans_the_paper_on_slurm_with_resources(paper_repo):
    plan = jobs(run(["snakemake", "-n", "--profile", "workflow/profiles/slurm"], paper_repo))
    backbones, shards = PAPER.backbones, PAPER.cache.shards
    evals = sum(len(bp.evals) for bp in backbones.values())
    assert len(plan["train_backbone"]) == len(backbones) == 7
    assert len(plan["cache_shard"]) == sum(shards.get(s, 1) for bp in backbones.values() for s in ["train", *bp.evals])
    assert len(plan["cache_gather"]) == len(backbones) + evals
    assert len(plan["train_refiner"]) == len(backbones) + len(PAPER.ablation.variants) == 17
    assert len(plan["evaluate"]) == len(plan["infer"]) == 2 * len(backbones) + len(PAPER.ablation.variants)
    assert len(plan["prepare_detections"]) == 1 and len(plan["download"]) == len(plan["prepare"]) == 2
    for rule, lines in plan.items():
        if rule == "all":
            continue
        for line in lines:
            assert "mem_mb=" in line and "runtime=" in line and "slurm_account=" in line, (rule, line)
            gpu = rule in ("train_backbone", "cache_shard", "train_refiner", "infer")
            assert ("gpu=1" in line) == gpu and ("slurm_partition=gpu" in line) == gpu, (rule, line)


def test_dvc_lists_the_same_grid(paper_repo):
    stages = [line.split()[0] for line in run(["dvc", "stage", "list"], paper_repo).splitlines() if line.strip()]
    per_backbone = ("train_backbone", "cache", "start_pose", "train_refiner", "infer_baseline", "infer",
                    "evaluate_baseline", "evaluate")
    for name in per_backbone:
        assert sorted(s for s in stages if s.split("@")[0] == name) == sorted(f"{name}@{b}" for b in PAPER.backbones)
    for name in ("train_ablation", "infer_ablation", "evaluate_ablation"):
        assert sorted(s for s in stages if s.split("@")[0] == name) == sorted(f"{name}@{v}" for v in PAPER.ablation.variants)
    assert {"download@coco", "download@crowdpose", "prepare@coco", "prepare@crowdpose", "report"} <= set(stages)
