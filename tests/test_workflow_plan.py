"""The full paper grid planned without running anything: Snakemake's dry run through the SLURM
profile (every job with its resources; no cluster needed) and DVC's stage list of the same grid."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import copy_project
from sgpose.config.selection import read_params_file
from sgpose.dag import table

ROOT = Path(__file__).resolve().parents[1]
PAPER = read_params_file(ROOT / "profiles" / "paper.yaml")


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory) -> Path:
    """The project with profiles/paper.yaml as params.yaml (what `sgpose profile paper` does)."""
    dest = copy_project(tmp_path_factory.mktemp("paper"))
    run(["sgpose", "profile", "paper"], dest)
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


def test_snakemake_plans_the_paper_grid_as_the_stage_table_says(paper_repo):
    plan = jobs(run(["snakemake", "-n", "--profile", "workflow/profiles/slurm"], paper_repo))
    expected = Counter(j.stage for j in table.jobs(PAPER, "snakemake"))
    assert {rule: len(lines) for rule, lines in plan.items() if rule != "all"} == expected
    backbones = PAPER.backbones
    assert expected["train_backbone"] == len(backbones) == 7
    assert expected["train_refiner"] == len(backbones) + len(PAPER.ablation.variants) == 17
    assert expected["cache_gather"] == sum(len(PAPER.splits_of(b)) for b in backbones)
    assert expected["cache_shard"] == sum(PAPER.cache.num_shards(s) for b in backbones for s in PAPER.splits_of(b))
    scored = sum(len(PAPER.evals_of(b, v)) for b in backbones for v in PAPER.scored_variants_of(b))
    online = [(b, s) for b in backbones for s in PAPER.online_of(b)]  # one job writes every variant's file
    assert expected["infer_online"] == len(online) > 0
    assert expected["infer"] == scored - sum(len(PAPER.online_variants(b, s)) for b, s in online)
    assert expected["prepare_detections"] == 1 and expected["download"] == expected["prepare"] == 2
    for rule, lines in plan.items():
        if rule == "all":
            continue
        for line in lines:
            assert "mem_mb=" in line and "runtime=" in line and "slurm_account=" in line, (rule, line)


def test_dvc_lists_the_same_grid(paper_repo):
    stages = [line.split()[0] for line in run(["dvc", "stage", "list"], paper_repo).splitlines() if line.strip()]
    assert sorted(stages) == sorted(j.name for j in table.jobs(PAPER, "dvc"))
    assert {"download.coco", "download.crowdpose", "prepare.coco", "prepare.crowdpose", "report"} <= set(stages)


def test_each_seed_of_a_variant_is_a_job_of_its_own_under_both_engines(tmp_path):
    """Issue 38: `ablation.seeds: 2` adds `<variant>_seed1` for ours and every ablation variant: its own
    train_refiner, infer and evaluate jobs in dvc.yaml and in Snakemake's plan, its own files (seed 0 keeps
    the variant's paths)."""
    from workflow_helpers import make_repo

    repo = make_repo(tmp_path / "seeds")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ablation"] |= {"seeds": 2, "seeded": None}  # every variant (the e2e grid seeds ours alone)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["sgpose", "dag"], repo)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for v in ("ours", "A1", "ours_S2"):
        train = stages[f"train_refiner.tiny.r18.{v}_seed1"]
        assert train["cmd"] == f"sgpose train_refiner --backbone r18 --variant {v}_seed1"
        assert f"results/tiny/r18/{v}_seed1/refiner.pt" in [o if isinstance(o, str) else next(iter(o)) for o in train["outs"]]
        assert f"infer.tiny.r18.{v}_seed1.val" in stages and f"evaluate.tiny.r18.{v}_seed1" in stages
        assert f"train_refiner.tiny.r18.{v}" in stages  # seed 0: the variant's own job and paths
    assert not [s for s in stages if "cp." in s and "_seed" in s]  # the ablation's backbone only
    plan = run(["snakemake", "-n", "--cores", "2", "results/metrics/tiny/r18/ours_seed1.json"], repo)
    planned = Counter(rule for rule, _ in re.findall(r"^rule (\w+):\n(.*?)(?=^\[|^rule |\Z)", plan, flags=re.M | re.S))
    assert planned["train_refiner"] == 1 and planned["evaluate"] == 1 and "variant=ours_seed1" in plan
