"""AP of the refiner as the evidence in a controlled backbone's features grows (issue 25): for each
informativeness of `backbones.<name>.evidence` (sgpose.controlled.evidence), a scratch project runs the real
stages for that backbone (cache, start_pose, the unrefined variants, then `ours` for every seed: train_refiner,
infer --split val, evaluate) and the table prints baseline, baseline + DARK, copy, oracle and ours (mean and
min-max spread over the seeds) per informativeness. Not a test: on demand, minutes per point.

The scratch project links in the project's prepared instances, download stamp and the `features_from`
backbone's weights (run the sample DAG first), and copies its params with the informativeness set.

    python benchmarks/evidence_sweep.py [PROJECT] [--backbone sb_r18_evidence] [--levels 0 0.5 0.75 1]
        [--seeds 0 1 2] [--scratch DIR] [--json FILE] [--threads N] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sgpose.config.paths import Paths
from sgpose.config.selection import read_params_file
from sgpose.core.io import write_json
from sgpose.core.variants import unrefined_of

SPLIT = "val"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    head, body = __doc__.split("\n\n", 1)
    ap = argparse.ArgumentParser(description=head, epilog=body, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("project", nargs="?", default=".", type=Path, help="where the sample DAG ran (default .)")
    ap.add_argument("--backbone", default="sb_r18_evidence", help="a controlled backbone with `evidence`")
    ap.add_argument("--levels", nargs="+", type=float, default=[0.0, 0.5, 0.75, 1.0], help="informativeness values")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="refiner seeds of ours")
    ap.add_argument("--variants", nargs="+", default=["ours"], help="refined variants (default ours)")
    ap.add_argument("--scratch", type=Path, help="scratch projects (default PROJECT/build/evidence_sweep)")
    ap.add_argument("--json", type=Path, help="results (default SCRATCH/<backbone>.json)")
    ap.add_argument("--threads", type=int, help="--threads of every stage")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    return ap.parse_args(argv)


def scratch_project(project: Path, root: Path, backbone: str, level: float) -> Paths:
    """A project at `root`: the params with the backbone's informativeness at `level`, the inputs linked."""
    tree = yaml.safe_load((project / "params.yaml").read_text())
    bp = tree["backbones"][backbone]
    if not bp.get("evidence"):
        raise SystemExit(f"{project / 'params.yaml'}: backbones.{backbone} has no evidence block")
    bp["evidence"]["informativeness"] = level
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    src = Paths.of(bp["dataset"], bp["features_from"], project)
    dst = Paths.of(bp["dataset"], bp["features_from"], root)
    dst.backbone_dir.mkdir(parents=True, exist_ok=True)
    for s, d in ((src.prepared, dst.prepared), (src.download_stamp, dst.download_stamp), (src.backbone, dst.backbone)):
        if not s.exists():
            raise SystemExit(f"{s}: missing; run the sample DAG in {project} first")
        with contextlib.suppress(FileExistsError):
            d.symlink_to(s.resolve())
    return Paths.of(bp["dataset"], backbone, root)


def sgpose(root: Path, log: Path, *args: str, threads: int | None = None, overrides: list[str] = ()) -> None:
    cmd = [sys.executable, "-m", "sgpose.cli", *args, "--params", "params.yaml",
           *(a for o in overrides for a in ("--set", o)), *(["--threads", str(threads)] if threads else [])]
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        if subprocess.run(cmd, cwd=root, stdout=fh, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"{log}: `{' '.join(args)}` failed:\n" + "".join(log.read_text().splitlines(True)[-15:]))


def ap(paths: Paths, variant: str) -> float:
    return round(100.0 * float(json.loads(paths.metrics(variant).read_text())[SPLIT]["AP"]), 2)


def point(project: Path, root: Path, args: argparse.Namespace, level: float) -> dict:
    """Every number of one informativeness."""
    paths = scratch_project(project, root, args.backbone, level)
    log, bb, t0 = root / "stages.log", ["--backbone", args.backbone], time.time()
    for split in ("train", SPLIT):
        sgpose(root, log, "cache", *bb, "--split", split, threads=args.threads, overrides=args.overrides)
    sgpose(root, log, "start_pose", *bb, threads=args.threads, overrides=args.overrides)
    row = {}
    for v in unrefined_of(controlled=True):
        sgpose(root, log, "infer", *bb, "--variant", v, "--split", SPLIT, threads=args.threads, overrides=args.overrides)
        sgpose(root, log, "evaluate", *bb, "--variant", v, threads=args.threads, overrides=args.overrides)
        row[v] = ap(paths, v)
    for v in args.variants:
        seeds = {}
        for seed in args.seeds:
            sets = [*args.overrides, f"train_refiner.seed={seed}"]
            for stage in (["train_refiner"], ["infer", "--split", SPLIT], ["evaluate"]):
                sgpose(root, log, *stage, *bb, "--variant", v, threads=args.threads, overrides=sets)
            seeds[str(seed)] = ap(paths, v)
            print(f"informativeness {level}: {v} seed {seed} AP {seeds[str(seed)]:.2f}", flush=True)
        vals = list(seeds.values())
        row[v] = {"ap": seeds, "mean": round(sum(vals) / len(vals), 2), "spread": round(max(vals) - min(vals), 2)}
    row["wall_s"] = round(time.time() - t0, 1)
    return row


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    project = args.project.resolve()
    read_params_file(project / "params.yaml")  # valid before anything runs
    scratch = (args.scratch or project / "build" / "evidence_sweep").resolve()
    out = args.json or scratch / f"{args.backbone}.json"
    record = {"project": str(project), "backbone": args.backbone, "split": SPLIT, "metric": "AP x 100",
              "seeds": args.seeds, "overrides": args.overrides, "points": {}}
    for level in args.levels:
        record["points"][str(level)] = point(project, scratch / f"informativeness_{level}", args, level)
        write_json(out, record)
    fixed = unrefined_of(controlled=True)
    print(f"\n{'informativeness':>15s}" + "".join(f"{v:>14s}" for v in fixed)
          + "".join(f"{v + ' mean':>12s}{'spread':>8s}" for v in args.variants))
    for level, row in record["points"].items():
        print(f"{level:>15s}" + "".join(f"{row[v]:14.2f}" for v in fixed)
              + "".join(f"{row[v]['mean']:12.2f}{row[v]['spread']:8.2f}" for v in args.variants))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
