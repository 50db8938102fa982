"""The sample's DAG up to one target in fresh clones on emulated machines, under `compute.cpu_numerics`
portable and native: the md5 of `backbone.pt` and of the target's outputs, the lines of the committed dvc.lock
the run changed, and each run's wall time (docs/reproducibility.md). `portable` should give one md5 per file
whatever the machine and leave dvc.lock as committed; `native` one md5 per machine; the wall times are the
price of `portable`.

    python benchmarks/numerics_dag.py --runs portable:here native:here portable:other native:other \\
        [--target infer.sample.sb_r18_perturbed.ours.val] [--out numerics_dag.json]

A machine is `here` (this machine as it is) or `other` (torch's kernels below AVX2, oneDNN at SSE4.1,
3 OpenMP and MKL threads, MKL's AUTO branch: sgpose.runtime.numerics.OTHER_MACHINE). Each run is a clone of
this checkout's committed HEAD with the venv linked in; SGPOSE_MIRROR must name the data mirror.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from sgpose.runtime.numerics import OTHER_MACHINE, PORTABLE_ENV  # noqa: E402

MACHINES = {"here": {}, "other": OTHER_MACHINE}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def one_run(setting: str, machine: str, target: str, work: Path) -> dict:
    """Clone, set `compute.cpu_numerics`, `dvc repro <target>` on the machine; md5s and wall time."""
    repo = work / f"{setting}-{machine}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("cpu_numerics: portable", f"cpu_numerics: {setting}"))
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV} | MACHINES[machine]
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo / "pipeline_src")  # the clone's package, not the venv's editable checkout
    if not (repo / ".dvc").is_dir():
        subprocess.run(["dvc", "init", "-q"], cwd=repo, env=env, check=True, capture_output=True)
    start = time.monotonic()
    proc = subprocess.run(["dvc", "repro", target], cwd=repo, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{setting}/{machine}: dvc repro failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    files = {"backbone.pt": repo / "results/sample/sb_r18/backbone.pt"}
    files |= {p.relative_to(repo).as_posix(): p for p in sorted((repo / "results/sample/sb_r18_perturbed").rglob(
        "*.json")) if "predictions" in p.parts}
    files |= {p.relative_to(repo).as_posix(): p for p in sorted((repo / "results/sample/sb_r18_perturbed").rglob(
        "refiner.pt"))}
    # the recorded dvc.lock against this run's, against HEAD (core.autostage: DVC stages the dvc.lock it writes): a
    # portable run must leave it as committed (native: other bits, and its params differ: every stage it ran changes)
    diff = subprocess.run(["git", "diff", "HEAD", "--numstat", "dvc.lock"], cwd=repo, capture_output=True,
                          text=True).stdout
    added, removed = (int(n) for n in (diff.split()[:2] or ["0", "0"]))
    return {"setting": setting, "machine": machine, "wall_s": round(wall, 1), "stages_run": proc.stdout.count(
        "Running stage"), "dvc_lock_lines_changed": added + removed,
        "md5": {name: md5(p) for name, p in files.items() if p.is_file()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["portable:here", "portable:other", "native:here", "native:other"],
                        help="SETTING:MACHINE pairs (default: %(default)s)")
    parser.add_argument("--target", default="infer.sample.sb_r18_perturbed.ours.val")
    parser.add_argument("--out", type=Path, default=Path("numerics_dag.json"))
    parser.add_argument("--work", type=Path, help="where the clones go (default: a temporary directory)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="numerics_dag-"))
    results = []
    for pair in args.runs:
        setting, machine = pair.split(":")
        results.append(one_run(setting, machine, args.target, work))
        r = results[-1]
        print(f"{setting:9s} {machine:6s} {r['wall_s']:8.1f} s  {r['stages_run']} stages  dvc.lock lines changed "
              f"{r['dvc_lock_lines_changed']}  backbone.pt {r['md5'].get('backbone.pt', '-')}", flush=True)
        args.out.write_text(json.dumps(results, indent=1))
    names = sorted({n for r in results for n in r["md5"]})
    for setting in ("portable", "native"):
        runs = [r for r in results if r["setting"] == setting]
        if len(runs) > 1:
            same = [n for n in names if len({r["md5"].get(n) for r in runs}) == 1]
            print(f"{setting}: {len(same)} of {len(names)} files equal on every machine")


if __name__ == "__main__":
    main()
