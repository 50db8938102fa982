"""Fetching the registry's official checkpoints (`sgpose.models.zoo` holds their URLs and checksums)
with the project's resumable, verified downloader. Apart from the zoo, so that what loads a checkpoint
(the cache stage: its fingerprint is its code) never depends on how one is downloaded."""

from __future__ import annotations

import logging
from pathlib import Path

from sgpose.data.download import Entry, fetch
from sgpose.models.zoo import CHECKPOINT_DIR, lookup

log = logging.getLogger(__name__)


def download_entry(key: str) -> Entry:
    """The download.Entry for a registry checkpoint (path relative to CHECKPOINT_DIR)."""
    zc = lookup(key)
    return Entry(zc.file_name, zc.url, zc.sha256, zc.size, sha256_prefix="" if zc.sha256 else zc.sha256_prefix)


def fetch_checkpoint(key: str, root: str | Path = ".", mirror: str | None = None, progress: bool = True) -> Path:
    """Fetch registry checkpoint `key` into `root/checkpoints/` (resumable, verified); a local mirror
    directory's `checkpoints/<file>` is preferred (else the registry URL), an http(s) mirror's is used."""
    entry, dest = download_entry(key), Path(root) / CHECKPOINT_DIR
    if mirror and mirror.startswith(("http://", "https://")):
        source: str | None = f"{mirror.rstrip('/')}/{CHECKPOINT_DIR}"
    else:
        local = Path(mirror) / CHECKPOINT_DIR if mirror else None
        source = str(local) if local is not None and (local / entry.path).is_file() else None
    outcome = fetch(entry, dest, source, progress=progress)
    log.info("checkpoint %s: %s (%s)", key, dest / entry.path, outcome)
    return dest / entry.path
