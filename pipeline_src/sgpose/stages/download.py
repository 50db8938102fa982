"""`sgpose download --dataset D`: fetch and verify every file of the dataset's `data.manifest` into
`data.raw_dir`, and the registry checkpoints its backbones import (`backbones.<name>.checkpoint`: a key of
`sgpose.models.zoo`) into `checkpoints/`. The downloader lives here alone: `train_backbone` only reads a
checkpoint, so an edit of the downloader never retrains a backbone.

Source: `--mirror`, else env `SGPOSE_MIRROR` (a local directory or an http(s) base URL with the
manifest's relative paths), else each file's public URL. Writes `results/<dataset>/download.json`
listing every verified file with its checksum: the output the workflow engines track (later stages depend on it, not on the files).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from sgpose.config.selection import Params
from sgpose.core.io import sha256_file, write_json
from sgpose.data.download import Entry, fetch_all, read_manifest
from sgpose.models import fetch as zoo_fetch
from sgpose.models import zoo
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
    checkpoints = {key: sha256_file(zoo_fetch.fetch_checkpoint(key, paths.root, mirror,
                                                               progress=not getattr(args, "no_progress", False)))
                   for key in registry_checkpoints(params)}
    write_json(paths.download_stamp, stamp | ({"checkpoints": checkpoints} if checkpoints else {}))


def registry_checkpoints(params: Params) -> list[str]:
    """The registry keys the dataset's backbones import, sorted (none for backbones trained here)."""
    return sorted({bp.checkpoint for bp in params.file.backbones.values()
                   if bp.dataset == params.dataset and zoo.is_registry_key(bp.checkpoint)})
