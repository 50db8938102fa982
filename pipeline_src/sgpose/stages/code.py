"""`sgpose code`: the digest of every stage's sources (results/code/<entry>.json), DVC's code dependency.

Run by DVC before anything else whenever a file of `pipeline_src/sgpose` changes (sgpose.dag.digests
says why DVC's jobs depend on a digest instead of listing their import closure). Reads the checkout in
the working directory, not the installed package, so the digests follow the files dvc.yaml names.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sgpose.config.paths import Paths
from sgpose.core.io import write_json
from sgpose.dag.digests import digest, package_dir
from sgpose.dag.table import entries
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", default=".", metavar="DIR",
                        help="the checkout whose pipeline_src/sgpose is read; digests go to its results/code/ "
                        "(default: the working directory)")


def main(run: Run) -> None:
    args = run.args
    project = Path(args.project)
    if not package_dir(project).is_dir():
        raise FileNotFoundError(f"{package_dir(project)}: no package sources here (run `sgpose code` in the "
                                "project root, or pass --project)")
    paths = Paths.of("-", "-", root=project)
    for entry in entries():
        d = digest(entry, project)
        write_json(paths.code_digest(entry), d)
        log.info("%s: %d files -> %s", entry, len(d["files"]), paths.code_digest(entry))
