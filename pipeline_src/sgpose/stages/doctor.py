"""`sgpose doctor`: does this machine compute the recorded bits? In seconds, before an 11-minute run.

Puts `compute.cpu_numerics: portable` in force (refusing, with the setting named, where it cannot hold),
computes the digest of every numeric component the stages use (`sgpose.golden.components`) and compares
each with the recorded one (`sgpose.golden.recorded`). Exit 0: every component agrees, so command 1 should
reproduce the recorded dvc.lock; exit 1: the components that differ are named, and the run would not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sgpose.stages import Run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ")
    parser.add_argument("--json", action="store_true", help="print {component: {digest, recorded, same}} as JSON")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="this component only (repeatable; default: all of them)")


def processor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This processor as the kernel reports it: name, family and model, its widest vector unit, cores."""
    fields: dict[str, str] = {}
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{fields.get('model name', 'unknown processor')}, family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}, {vector}, {os.cpu_count()} cores")


def main(run: Run) -> int:
    from sgpose.config.schema import ComputeParams
    from sgpose.runtime import numerics

    numerics.set_environment("portable")  # before torch, numpy and OpenCV start (none has yet: sgpose.cli)
    in_force = numerics.apply(ComputeParams())
    from sgpose.golden.components import COMPONENTS, digests
    from sgpose.golden.recorded import GOLDEN

    unknown = [n for n in run.args.only if n not in COMPONENTS]
    if unknown:
        raise ValueError(f"no component {unknown[0]!r} (components: {', '.join(COMPONENTS)})")
    found = digests(run.args.only or None)
    differ = [n for n, d in found.items() if d != GOLDEN.get(n)]
    if run.args.json:
        print(json.dumps({n: {"digest": d, "recorded": GOLDEN.get(n), "same": d == GOLDEN.get(n)}
                          for n, d in found.items()}, indent=1))
        return 1 if differ else 0
    print(f"sgpose doctor: {processor()}\nnumerics {in_force}")
    width = max(map(len, found))
    for name, d in found.items():
        verdict = "same" if name not in differ else f"DIFFERS (recorded {GOLDEN.get(name)})"
        print(f"  {name:{width}s}  {d}  {verdict}")
    if differ:
        print(f"sgpose doctor: this machine differs from the recorded digests in {len(differ)} of {len(found)} "
              f"components ({', '.join(differ)}): command 1 would not reproduce dvc.lock here. "
              "docs/reproducibility.md says what moves each component's bits.", file=sys.stderr)
        return 1
    print(f"sgpose doctor: this machine computes the recorded digests of all {len(found)} components: "
          "command 1 should reproduce dvc.lock to the bit (check it with `sgpose verdict` after the run)")
    return 0
