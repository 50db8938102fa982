"""`sgpose download`: fetch and verify every file of `data.manifest` into `data.raw_dir`.

Source: `--mirror`, else env `SGPOSE_MIRROR` (a local directory or an http(s) base URL with the
manifest's relative paths), else each file's public URL. Writes `<raw_dir>/<manifest stem>.done`
listing the verified files: the single output workflow engines track for this stage.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from sgpose.config import Params, Paths
from sgpose.data.download import fetch_all, read_manifest
from sgpose.io import write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", default=None,
                        help="local directory or http(s) base URL holding the files (overrides $SGPOSE_MIRROR)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def stamp_path(params: Params) -> Path:
    """`<raw_dir>/<manifest stem>.done`, e.g. data/raw/manifest.done."""
    return Path(params.data.raw_dir) / f"{Path(params.data.manifest).stem}.done"


def main(params: Params, paths: Paths, args: argparse.Namespace) -> None:
    mirror = getattr(args, "mirror", None) or os.environ.get("SGPOSE_MIRROR") or None
    entries = read_manifest(params.data.manifest)
    log.info("%d files in %s; source: %s", len(entries), params.data.manifest, mirror or "public URLs")
    counts = fetch_all(entries, params.data.raw_dir, mirror, progress=not getattr(args, "no_progress", False))
    log.info("verified %d files into %s (%s)", len(entries), params.data.raw_dir,
             ", ".join(f"{k} {v}" for k, v in counts.items()))
    write_json(stamp_path(params), {
        "manifest": params.data.manifest,
        "files": {e.path: e.sha256 for e in entries},
    })
