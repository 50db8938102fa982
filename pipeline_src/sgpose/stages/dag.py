"""`sgpose dag`: write dvc.yaml from the stage table and the params file's grid (`--check`: fail if stale).

dvc.yaml is generated (sgpose.dag.dvc) and checked in; run this after changing the grid of params.yaml
(datasets, backbones, evals, ablation) or after a profile switch (`sgpose profile` does it). The
Snakefile needs nothing: it builds its rules from the same table each time it is read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from sgpose.config.selection import read_params_file
from sgpose.dag import dvc
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="dvc.yaml", help="the file to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file is not what the table and params give")


def main(run: Run) -> None:
    args = run.args
    params, output = Path(args.params), Path(args.output)
    if args.check:
        if dvc.stale(params, output):
            raise ValueError(f"{output} is stale for {params} (grid or stage table changed): run `sgpose dag`")
        log.info("%s is current for %s", output, params)
        return
    file = read_params_file(params)
    changed = dvc.write(file, yaml.safe_load(params.read_text()), output)
    log.info("%s %s (%d stages)", output, "written" if changed else "unchanged", len(dvc.jobs(file, "dvc")))
