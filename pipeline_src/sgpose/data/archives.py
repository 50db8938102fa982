"""Zip extraction as part of download: atomic, idempotent, safe.

A verified archive is extracted into a temporary directory beside the target and its top-level
entries are renamed into place; a marker `.<archive>.extracted` (the archive's size and mtime and
the names it put there) is written last. A re-run with the marker present and the archive unchanged
does nothing, so a 19 GB zip is never unpacked twice; an interrupted extraction (no marker) is
redone from scratch, replacing the half-placed entries. (So two archives of one target must not
share a top-level directory; the COCO and CrowdPose zips do not.)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from pathlib import Path

from sgpose.core.io import write_json

log = logging.getLogger(__name__)


def marker_path(archive: Path, target: Path) -> Path:
    """`<target>/.<archive name>.extracted`: written only after every entry is in place."""
    return target / f".{archive.name}.extracted"


def _fingerprint(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_extracted(archive: Path, target: Path) -> bool:
    """True if the marker exists, matches the archive as it is now, and its entries are present."""
    marker = marker_path(archive, target)
    if not marker.is_file():
        return False
    try:
        record = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    same = all(record.get(k) == v for k, v in _fingerprint(archive).items())
    return same and all((target / name).exists() for name in record.get("entries", []))


def _safe_members(zf: zipfile.ZipFile, archive: Path) -> list[str]:
    """Member names, refusing absolute paths and `..` (a zip must not write outside its target)."""
    names = zf.namelist()
    bad = [n for n in names if n.startswith("/") or ".." in Path(n).parts]
    if bad:
        raise ValueError(f"{archive}: unsafe member path(s) {bad[:3]}: refusing to extract")
    return names


def extract_zip(archive: str | Path, target: str | Path) -> int:
    """Extract `archive` into `target` atomically; returns 1 if it extracted, 0 if already done."""
    archive, target = Path(archive), Path(target)
    if is_extracted(archive, target):
        return 0
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".tmp-extract-{archive.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            _safe_members(zf, archive)
            log.info("extracting %s into %s", archive, target)
            zf.extractall(tmp)
    except zipfile.BadZipFile as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{archive}: not a valid zip archive ({err})") from None
    entries = sorted(p.name for p in tmp.iterdir())
    for name in entries:
        dest = target / name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)  # left by an interrupted run (no marker): replace it whole
        elif dest.exists():
            dest.unlink()
        os.replace(tmp / name, dest)
    tmp.rmdir()
    write_json(marker_path(archive, target), {**_fingerprint(archive), "entries": entries})
    return 1
