"""The spread of Table 1 over refiner seeds on one backbone (issue 13: the controlled backbones' Table 1
means something only beyond the spread of its own seeds). Not a test: on demand, minutes per refiner.

For every refined variant and seed it takes COCO AP x 100 on Table 1's split (val, ground-truth boxes:
`sgpose.report.controlled.sections`): the project's own results for the seed it was run with
(`train_refiner.seed` of its params) where its metrics exist, else a fresh run in a scratch tree under `--scratch` (the project's
prepared instances, caches and start pose linked in, its params copied) through the real stages:
`sgpose train_refiner`, `infer --split val`, `evaluate`, each with `--set train_refiner.seed=<s>`.
Nothing in the project is written. The unrefined variants (baseline, baseline + DARK, the copy and, on a
controlled backbone, the oracle) do not depend on the refiner seed: they are read from the project once.
Prints AP per seed, mean and min-max spread per variant, and for every
variant against ours, baseline and baseline + DARK whether |difference of means| exceeds the combined
spread (the sum of the two min-max spreads; 0 for the unrefined rows); writes the same as JSON after
every run, so an interrupted benchmark keeps what it measured.

    python benchmarks/seed_spread.py [PROJECT] [--backbone sb_r18_perturbed] [--seeds 0 1 2]
        [--variants ours A1 ...] [--scratch DIR] [--json FILE] [--threads N] [--reuse JSON ...]
        [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sgpose.config.paths import Paths
from sgpose.config.schema import ParamsFile
from sgpose.config.selection import read_params_file
from sgpose.core.io import write_json
from sgpose.core.variants import BASELINE, BASELINE_DARK, COPY, UNREFINED, unrefined_of
from sgpose.report.tables import variant_order

SPLIT = "val"  # Table 1's split (sgpose.report.controlled.sections; ParamsFile.evals_of: the ablation's only)
METRIC = "AP"
REFERENCES = ("ours", BASELINE, BASELINE_DARK, COPY)  # every variant is compared with these


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    head, body = __doc__.split("\n\n", 1)
    ap = argparse.ArgumentParser(description=head, epilog=body, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("project", nargs="?", default=".", type=Path,
                    help="a project directory where the DAG has run for the backbone (default .)")
    ap.add_argument("--params", type=Path, help="its params file (default PROJECT/params.yaml)")
    ap.add_argument("--backbone", default="sb_r18_perturbed", help="a backbone of ablation.backbones")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="refiner seeds (default 0 1 2)")
    ap.add_argument("--variants", nargs="+", help="refined variants (default: ours and every ablation variant)")
    ap.add_argument("--scratch", type=Path, help="where the other seeds run (default PROJECT/build/seed_spread)")
    ap.add_argument("--json", type=Path, help="write the results here (default SCRATCH/<backbone>.json)")
    ap.add_argument("--threads", type=int, help="--threads of every stage (default: the stages' own)")
    ap.add_argument("--reuse", nargs="+", type=Path, default=[], metavar="JSON",
                    help="take the runs these earlier records of this benchmark hold (same project, params and "
                    "--set) instead of running them again: continue an interrupted benchmark, or merge two")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                    help="also override this in every scratch run (e.g. train_refiner.epochs=1 for a smoke run; "
                    "the project's own results are read as they are)")
    return ap.parse_args(argv)


def stage_command(stage: str, backbone: str, variant: str, seed: int, threads: int | None,
                  overrides: list[str]) -> list[str]:
    """One stage of one variant in a scratch tree (its cwd), trained with refiner seed `seed`."""
    sets = [a for o in [*overrides, f"train_refiner.seed={seed}"] for a in ("--set", o)]
    cmd = [sys.executable, "-m", "sgpose.cli", stage, "--params", "params.yaml", "--backbone", backbone,
           "--variant", variant, *sets]
    return cmd + (["--split", SPLIT] if stage == "infer" else []) + (["--threads", str(threads)] if threads else [])


def scratch_tree(project: Path, params_path: Path, root: Path, dataset: str, backbone: str) -> Paths:
    """A results tree at `root` holding links to the project's inputs of refiner training and inference
    (prepared instances and ground truth, the backbone's caches and start pose) and a copy of its params."""
    src, dst = Paths.of(dataset, backbone, project), Paths.of(dataset, backbone, root)
    for path in (src.prepared, src.cache_dir, src.start_pose):
        if not path.exists():
            raise SystemExit(f"{path}: missing; run the DAG for {backbone} in {project} first")
    dst.backbone_dir.mkdir(parents=True, exist_ok=True)
    for s, d in ((src.prepared, dst.prepared), (src.cache_dir, dst.cache_dir), (src.start_pose, dst.start_pose)):
        with contextlib.suppress(FileExistsError):  # a second benchmark on the same scratch made it
            d.symlink_to(s.resolve())
    tmp = root / f"params.yaml.{os.getpid()}.tmp"  # renamed: a stage of another benchmark may be reading it
    shutil.copyfile(params_path, tmp)
    tmp.replace(root / "params.yaml")
    return dst


def run_variant(paths: Paths, backbone: str, variant: str, seed: int, threads: int | None,
                overrides: list[str]) -> float:
    """Train, infer and evaluate one variant with one seed in a scratch tree; its AP x 100."""
    log = paths.results / f"{variant}.log"
    with log.open("w") as fh:
        for stage in ("train_refiner", "infer", "evaluate"):
            cmd = stage_command(stage, backbone, variant, seed, threads, overrides)
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            if subprocess.run(cmd, cwd=paths.root, stdout=fh, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"{log}: `sgpose {stage}` of {variant}, seed {seed} failed:\n"
                                 + "".join(log.read_text().splitlines(keepends=True)[-15:]))
    return ap_of(paths.metrics(variant))


def ap_of(path: Path) -> float:
    """AP x 100 on Table 1's split from an `evaluate` metrics file."""
    try:
        return round(100.0 * float(json.loads(path.read_text())[SPLIT][METRIC]), 2)
    except FileNotFoundError:
        raise SystemExit(f"{path}: no metrics; run `sgpose evaluate` for it first") from None
    except (KeyError, TypeError, ValueError) as err:
        raise SystemExit(f"{path}: no {SPLIT} {METRIC} in it ({err!r})") from None


def summary(runs: dict[str, dict[int, float]]) -> dict[str, dict]:
    """Per variant: AP per seed, mean and min-max spread (0 with one value)."""
    out = {}
    for variant, by_seed in runs.items():
        values = list(by_seed.values())
        out[variant] = {"ap": {str(s): v for s, v in by_seed.items()}, "mean": round(sum(values) / len(values), 2),
                        "spread": round(max(values) - min(values), 2), "n": len(values)}
    return out


def comparisons(rows: dict[str, dict]) -> list[dict]:
    """Every variant against each reference: the difference of means, the combined spread (sum of the
    two min-max spreads) and whether the difference exceeds it."""
    out = []
    for ref in (r for r in REFERENCES if r in rows):
        for variant in (v for v in rows if v != ref and v not in UNREFINED):
            a, b = rows[variant], rows[ref]
            diff, spread = round(a["mean"] - b["mean"], 2), round(a["spread"] + b["spread"], 2)
            out.append({"variant": variant, "vs": ref, "diff": diff, "combined_spread": spread,
                        "exceeds": abs(diff) > spread, "seeds": a["n"] if ref in UNREFINED else min(a["n"], b["n"])})
    return out


def print_table(rows: dict[str, dict], seeds: list[int], comps: list[dict]) -> None:
    """AP x 100 per variant and seed, mean and spread; then the comparisons."""
    head = f"{'variant':14s}" + "".join(f"{'seed ' + str(s):>9s}" for s in seeds) + f"{'mean':>9s}{'spread':>9s}"
    print(head)
    for variant in variant_order(rows):
        r = rows[variant]
        cells = "".join(f"{r['ap'][str(s)]:9.2f}" if str(s) in r["ap"] else f"{'-':>9s}" for s in seeds)
        print(f"{variant:14s}{cells}{r['mean']:9.2f}{r['spread']:9.2f}")
    print(f"\n{'variant':14s}{'vs':>15s}{'diff':>9s}{'spread':>9s}  exceeds")
    for c in comps:
        print(f"{c['variant']:14s}{c['vs']:>15s}{c['diff']:9.2f}{c['combined_spread']:9.2f}  "
              f"{'yes' if c['exceeds'] else 'no'}{'' if c['seeds'] > 1 else ' (one seed)'}")


def reused(files: list[Path], record: dict) -> dict[tuple[str, int], tuple[float, float | None]]:
    """(variant, seed) -> (AP, wall s) of earlier records of this benchmark (`--reuse`) made the same way:
    same project, backbone, split, overrides and params file contents (where the record has its hash)."""
    same = ("project", "backbone", "split", "overrides", "params_sha256")
    out = {}
    for path in files:
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: not a readable seed_spread record ({err})") from None
        differ = [k for k in same if k in old and old[k] != record[k]]
        if differ:
            raise SystemExit(f"{path}: made with another {', '.join(differ)}; not reused")
        for variant, row in old.get("rows", {}).items():
            for seed, ap in row["ap"].items():
                if variant not in UNREFINED and f"{variant}/{seed}" in old.get("wall_s", {}):
                    out[variant, int(seed)] = (ap, old["wall_s"][f"{variant}/{seed}"])
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    project = args.project.resolve()
    params_path = (args.params or project / "params.yaml").resolve()
    pf: ParamsFile = read_params_file(params_path)
    if args.backbone not in pf.backbones:
        raise SystemExit(f"{params_path}: --backbone {args.backbone}: not in backbones ({', '.join(pf.backbones)})")
    dataset, own_seed = pf.backbones[args.backbone].dataset, pf.train_refiner.seed
    variants = args.variants or pf.variants_of(args.backbone)
    scratch = (args.scratch or project / "build" / "seed_spread").resolve()
    out = args.json or scratch / f"{args.backbone}.json"
    scratch.mkdir(parents=True, exist_ok=True)
    proj = Paths.of(dataset, args.backbone, project)
    controlled = pf.backbones[args.backbone].controlled
    runs: dict[str, dict[int, float]] = {v: {own_seed: ap_of(proj.metrics(v))} for v in unrefined_of(controlled)}
    record = {"project": str(project), "backbone": args.backbone, "split": SPLIT, "metric": f"{METRIC} x 100",
              "project_seed": own_seed, "seeds": args.seeds, "overrides": args.overrides,
              "params_sha256": hashlib.sha256(params_path.read_bytes()).hexdigest(), "wall_s": {}, "rows": {},
              "comparisons": []}
    done = reused(args.reuse, record)
    for variant in variants:  # variant-major: an interrupted run has every seed of the first variants
        runs[variant] = {}
        for seed in args.seeds:
            if seed == own_seed and proj.metrics(variant).is_file():
                runs[variant][seed] = ap_of(proj.metrics(variant))
                continue
            if (variant, seed) in done:
                runs[variant][seed], record["wall_s"][f"{variant}/{seed}"] = done[variant, seed]
                continue
            t0 = time.time()
            paths = scratch_tree(project, params_path, scratch / f"seed{seed}", dataset, args.backbone)
            runs[variant][seed] = run_variant(paths, args.backbone, variant, seed, args.threads, args.overrides)
            record["wall_s"][f"{variant}/{seed}"] = round(time.time() - t0, 1)
            print(f"{variant} seed {seed}: AP {runs[variant][seed]:.2f} ({time.time() - t0:.0f} s)", flush=True)
            record["rows"] = summary(runs)
            write_json(out, record)
    record["rows"] = summary({v: runs[v] for v in variant_order(runs)})
    record["comparisons"] = comparisons(record["rows"])
    write_json(out, record)
    print()
    print_table(record["rows"], args.seeds, record["comparisons"])
    print(f"\n{args.backbone}: {SPLIT} {METRIC} x 100; wall time of the scratch runs "
          f"{sum(record['wall_s'].values()):.0f} s; JSON: {out}")


if __name__ == "__main__":
    main()
