"""The tiny real grid the workflow tests run (DVC, Snakemake locally and on SLURM): the four COCO
val2017 images of the mirror's fixtures (ground-truth and detection boxes) and the two CrowdPose
fixture images, one backbone each, the ablation with one paper variant and one sweep, a sharded
training split; one epoch everywhere, CPU. Plus how those tests run a command and read the metrics."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import MIRROR, copy_project, require
from sgpose.config.selection import read_params_file
from sgpose.dag.table import rule_names
from sgpose.runtime.numerics import OTHER_MACHINE, PORTABLE_ENV  # noqa: F401 (OTHER_MACHINE: the e2e tests')

ROOT = Path(__file__).resolve().parents[1]

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
    "ablation": {"dataset": "tiny", "backbone": "r18", "variants": ["A1", "ours_S2"], "seeds": 2, "seeded": ["ours"]},
}
SECTIONS = {  # merged into the sample's sections
    "train_backbone": {"epochs": 1, "batch_size": 8, "lr_steps": []},
    "cache": {"batch_size": 8, "shards": {"train": 2}},
    "refiner": {"base_channels": 8, "time_dim": 16},
    "train_refiner": {"epochs": 1, "batch_size": 8},
}
# the unrefined variants (baseline, baseline_dark, copy: no oracle, neither backbone is controlled), ours, the ablation
EVALUATIONS = {("tiny", "r18", v) for v in ("baseline", "baseline_dark", "copy", "ours", "A1", "ours_S2", "ours_seed1")} | {
    ("tiny_crowd", "cp", v) for v in ("baseline", "baseline_dark", "copy", "ours")}
# every rule its own job size, so a SLURM job's values name the rule entry they came from; no GPU anywhere
TINY_RESOURCES = {rule: {"threads": 1, "mem_mb": 1000 + 20 * i, "runtime": 10 + i, "gpu": 0}
                  for i, rule in enumerate(rule_names())}
# every rule 1 or 2 threads (alternating, within CI's 2 cores): each stage's first log line must report its rule's
THREADED = {rule: {"threads": 1 + i % 2} for i, rule in enumerate(rule_names())}
REFINER_AND_AFTER = re.compile(r"^(train_refiner|infer|evaluate)\.|^report$|^check_params$")


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        base[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def make_repo(dest: Path, extra: dict | None = None) -> Path:
    """A copy of the project with the tiny grid (and `extra` sections merged in), as a fresh git repo."""
    require(MIRROR / "fixtures" / "coco")
    require(MIRROR / "fixtures" / "crowdpose")
    copy_project(dest)
    (dest / "dvc.lock").unlink(missing_ok=True)  # the sample run's: the tiny grid records its own
    params = _merge(_merge(yaml.safe_load((ROOT / "params.yaml").read_text()), SECTIONS), extra or {}) | GRID
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # every key spelled out (defaults included), as in the shipped params.yaml: DVC tracks each key a stage reads
    full = read_params_file(dest / "params.yaml").model_dump(mode="json")
    (dest / "params.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    run(["sgpose", "dag"], dest)  # dvc.yaml for the tiny grid
    return dest


def run(cmd: list[str], cwd: Path, interleaved: bool = False, machine: dict | None = None) -> str:
    """stdout and stderr of a command the test needs to succeed (the venv's tools first on PATH), in a user's
    environment (none of the numerics variables the stages set themselves) or `machine`'s (its PATH, if any, goes
    before the venv's tools: a wrapper there replaces them); `interleaved`: as one stream, in the order written (a
    stage's log lines inside DVC's own output)."""
    machine = dict(machine or {})
    path = [p for p in (machine.pop("PATH", None), str(Path(sys.executable).parent), os.environ["PATH"]) if p]
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV} | machine
    env |= {"SGPOSE_MIRROR": str(MIRROR), "PATH": os.pathsep.join(path)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if interleaved else subprocess.PIPE, text=True)
    out = proc.stdout + (proc.stderr or "")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def metrics_of(repo: Path) -> dict[tuple[str, str, str], dict]:
    """(dataset, backbone, variant) -> the metrics json of every evaluation under results/metrics."""
    found = sorted(repo.glob("results/metrics/*/*/*.json"))
    return {(p.parts[-3], p.parts[-2], p.stem): json.loads(p.read_text()) for p in found}


def snakemake_tiny(dest: Path) -> tuple[Path, float]:
    """The tiny grid (TINY_RESOURCES) run by `snakemake --cores 2` in a new repository at `dest`, and
    its wall time in seconds."""
    repo = make_repo(dest, {"resources": TINY_RESOURCES})
    start = time.monotonic()
    run(["snakemake", "--cores", "2"], repo)
    return repo, time.monotonic() - start


def digests(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `root` (its path relative to `root`), less the files named in `skip`."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}
