"""Issue 27 under both engines: a refiner that diverges (train_refiner.lr 1e6, as a hostile user set it)
fails its job with one line, writes no refiner, and nothing downstream of it runs: no predictions, no
metrics, no report, where before the stage exit 0 with NaN weights and evaluate scored AP 0.0.

The tiny grid of test_workflow_e2e.py reduced to its COCO backbone (r18, no ablation variants). DVC runs
first; Snakemake then runs the same repository (the upstream outputs DVC made are kept: its mtime
trigger only), resuming the divergent refiner from the resume point DVC's run kept, diverging again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import MIRROR
from workflow_helpers import make_repo, run

pytestmark = pytest.mark.e2e

BB = Path("results/tiny/r18")
DIVERGED = re.compile(r"sgpose train_refiner: error: refiner ours: training diverged at epoch \d+, step \d+/\d+: (the loss|the "
                      r"gradient norm|a weight \(max \|w\|\)) is (nan|inf|-inf); [^\n]*Nothing written; [^\n]*Try a lower "
                      r"train_refiner\.lr \(now 1e\+06\) or gradient clipping, train_refiner\.grad_clip_norm \(off now\)\.")


def diverging_repo(dest: Path) -> Path:
    """make_repo's tiny grid, one backbone, one refiner (no variants, no seeds) at lr 1e6 for 5 epochs;
    dvc.yaml regenerated."""
    repo = make_repo(dest)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, name in (("datasets", "tiny_crowd"), ("backbones", "cp"), ("evals", "cp")):
        params[section].pop(name)
    params["ablation"].update(variants=[], seeds=1, seeded=[])  # one refiner: ours, seed 0
    params["train_refiner"].update(epochs=5, lr=1e6)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["sgpose", "dag"], repo)
    return repo


def failing(cmd: list[str], repo: Path) -> str:
    """The output of `cmd`, which must fail."""
    env = {**os.environ, "SGPOSE_MIRROR": str(MIRROR), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    return out


def nothing_downstream(repo: Path) -> None:
    """No refiner, no ours predictions or metrics, no report: nothing built on the divergent run."""
    assert not (repo / BB / "ours/refiner.pt").exists() and not (repo / BB / "ours/train_log.csv").exists()
    assert not list((repo / BB / "ours").glob("predictions/*")), list((repo / BB / "ours").rglob("*"))
    assert not (repo / "results/metrics/tiny/r18/ours.json").exists()
    assert not (repo / "results/report").exists()


def test_a_divergent_refiner_fails_its_job_and_nothing_downstream_runs(tmp_path):
    repo = diverging_repo(tmp_path)
    out = failing(["dvc", "repro"], repo)
    dvc_line = DIVERGED.search(out)
    assert dvc_line, out[-6000:]
    assert re.search(r"ERROR: failed to reproduce 'train_refiner\.tiny\.r18\.ours'", out), out[-3000:]
    nothing_downstream(repo)
    print("\nDVC: " + dvc_line.group(0))

    out = failing(["snakemake", "--cores", "2", "--rerun-triggers", "mtime"], repo)
    assert "Error in rule train_refiner:" in out, out[-6000:]
    log = (repo / "logs/train_refiner/tiny-r18-ours.log").read_text()
    snakemake_line = DIVERGED.search(log)
    assert snakemake_line, log[-3000:]
    assert "resuming from results/tiny/r18/ours/refiner.pt.last" in log  # the point DVC's run kept
    assert snakemake_line.group(0).split(";")[0] == dvc_line.group(0).split(";")[0]  # the same step diverged
    nothing_downstream(repo)
    print("Snakemake: " + snakemake_line.group(0))
