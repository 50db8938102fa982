"""`sgpose check_params`: validate the whole params file and write a stamp (results/params_check.json).

Every stage validates the whole file before any work starts, but a workflow engine runs a stage only
when the sections it depends on change: a misspelt top-level section (`trian_refiner:`) changes none
of them, so `dvc repro` would say "up to date" over a file no stage accepts. This stage depends on
the whole file, so any edit re-runs it and an invalid file fails the run, loudly, naming the key.
Beyond what `load_params` checks for the default selection, every backbone's selection is checked.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

from sgpose.config.selection import Params
from sgpose.core.io import write_json
from sgpose.dag import dvc
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dvc-yaml", metavar="PATH",
                        help="also fail when this dvc.yaml is stale for the file's grid (DVC's form of the stage)")


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
    file = params.file
    dvc_yaml = getattr(args, "dvc_yaml", None)
    if dvc_yaml and dvc.stale(getattr(args, "params", "params.yaml"), dvc_yaml):
        raise ValueError(f"{dvc_yaml} is stale for {args.params}: the grid (datasets, backbones, evals, ablation) "
                         "or the stage table changed; run `sgpose dag`, then `dvc repro` again")
    for name in file.backbones:  # each selection a stage can be run with
        Params(file, backbone=name)
    source = Path(getattr(args, "params", "params.yaml"))
    stamp = {"params": source.as_posix(), "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
             "overrides": list(getattr(args, "overrides", []) or []),
             "backbones": {name: file.variants_of(name) for name in file.backbones}}
    write_json(paths.params_check, stamp)
    log.info("%s: valid (%d datasets, %d backbones) -> %s", source, len(file.datasets), len(file.backbones),
             paths.params_check)
