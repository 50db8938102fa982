"""The whole tiny DAG (tests/workflow_helpers.py's grid: every stage kind, both datasets, the ablation) under
Snakemake on this machine and under emulated processors (qemu-user: `qemu-x86_64 -cpu MODEL`), compared
file by file: under `compute.cpu_numerics: portable` every file of results/ should be the same bytes
(docs/reproducibility.md). Slow: a stage under emulation runs 30-70x slower (about 30-60 min per model on
2 cores); the suite runs the components under emulation instead (tests/golden/test_emulated_processors.py).

    SGPOSE_MIRROR=../shared/data python benchmarks/emulated_dag.py --models EPYC-Milan [--out emulated_dag.json]

Each machine's run is a copy of the working tree (tests/conftest.py's copy_project) with the tiny grid; under
emulation every `sgpose` job Snakemake starts runs its Python under qemu (a wrapper first on PATH).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from workflow_helpers import TINY_RESOURCES, digests, make_repo, run  # noqa: E402

SKIP = (".snakemake_timestamp",)  # Snakemake's mark on a directory output


def wrapper(bindir: Path, model: str) -> Path:
    """A directory whose `sgpose` runs the venv's Python under `qemu-x86_64 -cpu model`."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("qemu-x86_64 not found (Debian: apt-get install qemu-user)")
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "sgpose"
    # each call leaves a line in calls.log: the run can show that its jobs went through the emulator
    script.write_text(f'#!/bin/sh\necho "$@" >> {bindir / "calls.log"}\n'
                      f'exec {qemu} -cpu {model} {sys.executable} -m sgpose.cli "$@"\n')
    script.chmod(0o755)
    return bindir


def one_machine(machine: str, work: Path) -> tuple[dict[str, str], float, int]:
    """results/'s digests, the wall time and the number of `sgpose` jobs run under the emulator (0 native) of the
    tiny DAG under Snakemake on `machine` (native or a model)."""
    repo = make_repo(work / machine, {"resources": TINY_RESOURCES})
    bindir = wrapper(work / f"bin-{machine}", machine) if machine != "native" else None
    start = time.monotonic()
    run(["snakemake", "--cores", "2"], repo, machine={"PATH": str(bindir)} if bindir else None)
    calls = len((bindir / "calls.log").read_text().splitlines()) if bindir and (bindir / "calls.log").is_file() else 0
    return digests(repo / "results", skip=SKIP), time.monotonic() - start, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["EPYC-Milan"], help="qemu CPU models (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("emulated_dag.json"))
    parser.add_argument("--work", type=Path, help="where the runs go (default: a temporary directory)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="emulated_dag-"))
    native, wall, _ = one_machine("native", work)
    report = {"native": {"wall_s": round(wall, 1), "files": len(native)}}
    print(f"native: {len(native)} files in {wall:.0f} s", flush=True)
    for model in args.models:
        found, wall, calls = one_machine(model, work)
        differ = sorted(f for f in set(native) | set(found) if native.get(f) != found.get(f)
                        and not f.startswith("code/"))
        report[model] = {"wall_s": round(wall, 1), "files": len(found), "emulated_jobs": calls, "differ": differ}
        print(f"{model}: {calls} sgpose jobs under qemu; {len(found)} files in {wall:.0f} s; {len(differ)} differ "
              "from native" + (f" (first: {differ[0]})" if differ else ""), flush=True)
        args.out.write_text(json.dumps(report, indent=1))
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
