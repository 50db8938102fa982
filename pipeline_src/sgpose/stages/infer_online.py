"""`sgpose infer_online --backbone B [--split S]`: the predictions of every variant scored on the backbone's
online splits (the `online` section), in one pass over each split's crops through the frozen backbone:
no cache (sgpose.inference.online). Writes `<variant>/predictions/<split>.json`, the files `sgpose infer` writes
for a cached split, so `evaluate` reads either.
"""

from __future__ import annotations

import argparse

from sgpose.config.schema import SPLITS
from sgpose.inference.online import write_predictions
from sgpose.runtime import compute
from sgpose.stages import Run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", action="append", dest="splits", choices=SPLITS,
                        help="only this online split (repeatable; default: every split in online.<backbone>)")


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
    write_predictions(params, paths, compute.device(params.compute), getattr(args, "splits", None))
