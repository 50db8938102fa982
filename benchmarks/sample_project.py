"""A working copy of the shipped COCO sample for the benchmarks: `sample_tree` (profiles/sample.yaml cut to
its COCO sample and one backbone, reading the mirror in place) and `Project` (a directory with that
params.yaml where stages run as `python -m sgpose.cli`, logged). Used by gpu_check.py and cache_throughput.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from sgpose.config.paths import Paths

REPO = Path(__file__).resolve().parents[1]


def mirror() -> Path:
    """The data mirror (the bundle's subset on the GPU machine: gpu_check.sh sets SGPOSE_MIRROR)."""
    return Path(os.environ.get("SGPOSE_MIRROR") or REPO.parent / "shared" / "data").resolve()


def sample_tree(**sections) -> dict:
    """profiles/sample.yaml reduced to its COCO sample and one backbone, read from the mirror in place."""
    tree = yaml.safe_load((REPO / "profiles" / "sample.yaml").read_text())
    ds, src = tree["datasets"]["sample"], mirror() / "coco_sample"
    ds["data"] |= {"images_dir": str(src / "images"), "annotations": str(src / "annotations/person_keypoints_sample.json")}
    ds["prepare"]["detections"] = str(src / "person_detection_results/COCO_val2017_detections_AP_H_56_person_sample.json")
    bb = tree["ablation"]["backbone"]
    tree |= {"datasets": {"sample": ds}, "backbones": {bb: tree["backbones"][bb]}, "evals": {bb: ["val", "val_det"]},
             "online": {bb: ["val_det"]}, "ablation": tree["ablation"] | {"variants": [], "backbones": None}}
    for key, value in sections.items():
        section, _, leaf = key.partition("__")
        tree[section] = tree.get(section, {}) | ({leaf: value} if leaf else value)
    return tree


class Project:
    """A working directory with a params.yaml, where stages run as `python -m sgpose.cli` (logged)."""

    def __init__(self, root: Path, tree: dict | None = None):
        """A fresh project with `tree` as its params, or (no tree) the one already at `root`."""
        self.root, self.params = root, root / "params.yaml"
        if tree is not None:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            self.params.write_text(yaml.safe_dump(tree, sort_keys=False))
        tree = yaml.safe_load(self.params.read_text())
        self.paths = Paths.of("sample", next(iter(tree["backbones"])), root)

    def run(self, *args: str, launcher: tuple[str, ...] = ()) -> None:
        cmd = [sys.executable, *launcher, "-m", "sgpose.cli", *args[:1], "--params", str(self.params), *args[1:]]
        with open(self.root / "stages.log", "a") as log:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            done = subprocess.run(cmd, cwd=self.root, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            tail = (self.root / "stages.log").read_text()[-3000:]
            raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode}); log tail:\n{tail}")

    def keep(self, counts: dict[str, int] | None) -> None:
        """Cut the prepared instance tables to their first rows (CPU sizes)."""
        for split, n in (counts or {}).items():
            path = self.paths.instances(split)
            pd.read_parquet(path).iloc[:n].to_parquet(path, index=False)

    def ap(self, variant: str) -> dict[str, float]:
        """{split: AP} of one evaluated variant."""
        return {s: float(m["AP"]) for s, m in json.loads(self.paths.metrics(variant).read_text()).items()}
