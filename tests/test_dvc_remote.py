"""Results shared through a DVC remote: the tiny DAG run by Snakemake becomes DVC's (`dvc commit`),
is pushed with its run-cache to a local remote directory, and a fresh `git clone` pulls it back:
`dvc repro --allow-missing` then runs no stage and the report is byte for byte the one pushed.

DVC caches (and pushes, and keeps a run-cache for) a stage only when every output is cached:
CACHE_DECISIONS is the cache setting of each output dvc.yaml declares `cache: false` today, applied
here to the test repository's copy of dvc.yaml (docs/cluster.md, "Share results")."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

# dvc.yaml output path -> cache; True: pushed, pulled, and its stage restorable from the run-cache
CACHE_DECISIONS = {
    "results/${key}/download.json": True,  # bytes; prepare's dependency
    "results/${item.dataset}/${key}/train_log.csv": True,  # KB; the report's training curves
    "results/${item.dataset}/${key}/cache": False,  # persist; hundreds of GB at full scale: rebuilt, never shared
    "results/${item.dataset}/${key}/ours/train_log.csv": True,
    "results/${ablation.dataset}/${ablation.backbone}/${item.variant}/train_log.csv": True,
    "results/metrics/${item.dataset}/${key}/baseline.json": True,  # results/ is git-ignored: uncached
    "results/metrics/${item.dataset}/${key}/ours.json": True,  # metrics reach no colleague
    "results/metrics/${ablation.dataset}/${ablation.backbone}/${item.variant}.json": True,
    "results/report": True,  # what a colleague pulls to read the tables
}
RESTORED = {"download", "prepare", "train_backbone", "start_pose", "train_refiner", "train_ablation",
            "infer_baseline", "infer", "infer_ablation", "evaluate_baseline", "evaluate", "evaluate_ablation",
            "report"}  # stages with every output cached: `dvc pull --run-cache` restores them (all but `cache`)
# the report's dependencies as the files it reads (the Snakefile's report_inputs), not the ablation
# backbone's whole directory: that holds the feature cache, which a clone lacks (a changed directory,
# where a missing file is only missing data for `dvc repro --allow-missing`)
BACKBONE_DIR = "results/${ablation.dataset}/${ablation.backbone}"


def report_deps(variants: list[str]) -> list[str]:
    """The report's dependencies inside BACKBONE_DIR for these refined variants (ours + the ablation's)."""
    return [f"{BACKBONE_DIR}/cache/val.h5", f"{BACKBONE_DIR}/train_log.csv", f"{BACKBONE_DIR}/start_pose.json",
            *(f"{BACKBONE_DIR}/{v}/{name}" for v in variants for name in ("refiner.pt", "train_log.csv"))]


GIT = ["git", "-c", "user.name=sgpose test", "-c", "user.email=test@sgpose.invalid"]


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def outputs(stage: dict) -> list[dict]:
    """The output entries ({path: options}) of a stage's outs, metrics and plots (foreach's `do` too)."""
    body = stage.get("do", stage)
    return [e for kind in ("outs", "metrics", "plots") for e in body.get(kind, []) if isinstance(e, dict)]


def apply_decisions(dvc_yaml: Path, variants: list[str]) -> None:
    """Set each output's cache per CACHE_DECISIONS (every `cache: false` output must have a decision),
    the report's dependencies per report_deps."""
    tree = yaml.safe_load(dvc_yaml.read_text())
    deps = tree["stages"]["report"]["deps"]
    if BACKBONE_DIR in deps:
        deps[deps.index(BACKBONE_DIR):deps.index(BACKBONE_DIR) + 1] = report_deps(variants)
    for stage in tree["stages"].values():
        for entry in outputs(stage):
            for path, options in entry.items():
                if options.get("cache") is False:
                    assert path in CACHE_DECISIONS, f"dvc.yaml: no cache decision for {path}"
                if path in CACHE_DECISIONS:
                    options["cache"] = CACHE_DECISIONS[path]
    dvc_yaml.write_text(yaml.safe_dump(tree, sort_keys=False))


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pushed(snakemake_tiny_run, tmp_path_factory) -> tuple[Path, Path, str]:
    """(repo, remote, the commit/push output): the tiny DAG run by Snakemake, committed to DVC, pushed."""
    repo = snakemake_tiny_run[0]
    (repo / "dvc.lock").unlink(missing_ok=True)  # the sample run's: record only the tiny grid's stages
    apply_decisions(repo / "dvc.yaml", ["ours", *yaml.safe_load((repo / "params.yaml").read_text())["ablation"]["variants"]])
    remote = tmp_path_factory.mktemp("share") / "remote"
    run(["dvc", "remote", "modify", "--local", "storage", "url", str(remote)], repo)
    out = run(["dvc", "commit", "--force"], repo)
    out += run(["dvc", "repro"], repo)  # DVC now holds Snakemake's outputs as its own: nothing to run
    out += run(["dvc", "push", "--run-cache"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", "tiny grid, results in DVC"], repo)
    return repo, remote, out


def test_dvc_takes_snakemakes_outputs_and_pushes_them_with_the_run_cache(pushed):
    repo, remote, out = pushed
    assert "Running stage" not in out
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {name.split("@")[0] for name in lock} == RESTORED | {"cache"}
    runs = [p for p in (remote / "runs").rglob("*") if p.is_file()]
    run_cached = {name for name in lock if name.split("@")[0] in RESTORED}
    assert len(runs) == len(run_cached), (len(runs), sorted(run_cached))


def test_a_fresh_clone_pulls_the_results_and_reruns_nothing(pushed, tmp_path):
    repo, remote, _ = pushed
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "storage", "url", str(remote)], clone)
    run(["dvc", "pull", "--run-cache"], clone)
    assert digests(clone / "results" / "report") == digests(repo / "results" / "report")
    assert not (clone / "results/tiny/r18/cache").exists()  # never pushed (CACHE_DECISIONS)
    again = run(["dvc", "repro", "--allow-missing"], clone)
    assert not re.findall(r"Running stage '([^']+)'", again), again[-3000:]
    assert digests(clone / "results" / "report") == digests(repo / "results" / "report")
