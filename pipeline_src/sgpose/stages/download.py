"""`sgpose download --dataset D`: fetch and verify every file of the dataset's `data.manifest` into
`data.raw_dir` (official backbone checkpoints are fetched by `train_backbone`, which imports them).

Source: `--mirror`, else env `SGPOSE_MIRROR` (a local directory or an http(s) base URL with the
manifest's relative paths), else each file's public URL. Writes `results/<dataset>/download.json`
listing every verified file with its checksum: the output the workflow engines track (later stages depend on it, not on the files).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from sgpose.core.io import sha256_file, write_json
from sgpose.data.download import Entry, fetch_all, read_manifest
from sgpose.stages import Run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", default=None,
                        help="local directory or http(s) base URL holding the files (overrides $SGPOSE_MIRROR)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def recorded_checksum(entry: Entry, raw_dir: Path) -> str:
    """The stamp's record of a file: its sha256 (computed where the manifest pins none) or `md5:<hex>`."""
    if entry.sha256:
        return entry.sha256
    if entry.md5:
        return f"md5:{entry.md5}"
    return sha256_file(raw_dir / entry.path)  # unpinned: record what was accepted, so it can be pinned


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
    mirror = getattr(args, "mirror", None) or os.environ.get("SGPOSE_MIRROR") or None
    entries = read_manifest(params.data.manifest)
    log.info("%d files in %s; source: %s", len(entries), params.data.manifest, mirror or "public URLs")
    counts = fetch_all(entries, params.data.raw_dir, mirror, progress=not getattr(args, "no_progress", False))
    log.info("verified %d files into %s (%s)", len(entries), params.data.raw_dir,
             ", ".join(f"{k} {v}" for k, v in counts.items()))
    stamp = {"manifest": params.data.manifest,
             "files": {e.path: recorded_checksum(e, Path(params.data.raw_dir)) for e in entries}}
    write_json(paths.download_stamp, stamp)
