"""Images checked against the download record before a stage reads them.

`sgpose download` verifies every file once and records its checksum in results/<dataset>/download.json
(the stage output later stages depend on). A file damaged afterwards (bytes flipped on disk) changes
nothing DVC or Snakemake look at, so the stages that read images (cache, train_backbone) hash each
image they are about to read, once per run, and refuse one that no longer matches: an InputError
naming the file and telling the user to run `sgpose download`. Images that are not listed one by
one (extracted from a verified archive) and runs without a record (files supplied by hand) are not
checked; the log says how many were.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.core.errors import InputError
from sgpose.core.io import file_digest

log = logging.getLogger(__name__)


def recorded_checksums(stamp: Path, raw_dir: str | Path) -> dict[Path, str]:
    """{absolute file path: `<sha256 hex>` or `md5:<hex>`} from a download stamp (empty without one)."""
    if not stamp.is_file():
        return {}
    try:
        files = json.loads(stamp.read_text())["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(stamp, f"not a download record ({err}); run `sgpose download`") from None
    root = Path(raw_dir)
    return {Path(os.path.abspath(root / rel)): digest for rel, digest in files.items()}


def verify_files(files: Iterable[Path], record: dict[Path, str], stamp: Path, dataset: str) -> int:
    """Hash each recorded file of `files` (each once) and compare; returns how many were checked."""
    checked = 0
    for path in sorted({Path(os.path.abspath(f)) for f in files}):
        expected = record.get(path)
        if expected is None or not path.is_file():  # unlisted: archive member; missing: read_rgb says so
            continue
        algorithm, want = ("md5", expected[4:]) if expected.startswith("md5:") else ("sha256", expected)
        got = file_digest(path, algorithm)
        if got != want:
            raise InputError(path, f"{algorithm} {got[:12]}... differs from the download record {stamp} "
                             f"({want[:12]}...): the file changed after download; run `sgpose download "
                             f"--dataset {dataset}`")
        checked += 1
    return checked


def verify_images(params: Params, paths: Paths, file_names: Iterable[str]) -> None:
    """Check the images `file_names` (relative to data.images_dir) against the dataset's download record."""
    names = list(file_names)
    record = recorded_checksums(paths.download_stamp, params.data.raw_dir)
    if not record:
        log.info("no download record %s: %d images not verified", paths.download_stamp, len(set(names)))
        return
    images = Path(params.data.images_dir)
    checked = verify_files((images / n for n in names), record, paths.download_stamp, params.dataset)
    log.info("%d of %d images match %s", checked, len(set(names)), paths.download_stamp)
