"""Fetch the files named in a manifest (path, url, sha256, size) and verify every byte.

A file appears at its final name only after its sha256 and size check out, so a present file is a
verified file and re-runs skip it. Sources, in order of preference: a mirror (a local directory or
an http(s) base URL holding the same relative paths, `SGPOSE_MIRROR`), else the entry's own URL.
HTTP downloads go to `<dest>.part` and resume from there with a `Range` request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

COLUMNS = ("path", "url", "sha256", "size")
OFFICIAL_ANNOTATIONS = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
CHUNK = 1 << 16


@dataclass(frozen=True)
class Entry:
    """One manifest row: `path` relative to the mirror root and to the download directory."""

    path: str
    url: str
    sha256: str
    size: int


class DownloadError(ValueError):
    """A file that could not be fetched or failed verification; the message names the file."""


def _parse_row(fields: list[str], where: str) -> Entry:
    """Validate one manifest row's fields (why: a typo should fail here, not after a long download)."""
    if len(fields) != len(COLUMNS):
        raise ValueError(f"{where}: expected {len(COLUMNS)} tab-separated fields {COLUMNS}, got {len(fields)}")
    path, url, digest, size = (f.strip() for f in fields)
    if not path or path.startswith("/") or ".." in Path(path).parts:
        raise ValueError(f"{where}: path {path!r} must be relative and stay inside the download directory")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{where}: sha256 {digest!r} is not 64 lowercase hex digits")
    if not size.isdigit():
        raise ValueError(f"{where}: size {size!r} is not a non-negative integer")
    return Entry(path, url, digest, int(size))


def read_manifest(path: str | Path) -> list[Entry]:
    """Read a manifest TSV with header `path url sha256 size`; errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: manifest not found") from None
    if not lines or tuple(h.strip() for h in lines[0].split("\t")) != COLUMNS:
        raise ValueError(f"{path}:1: header must be the tab-separated columns {COLUMNS}")
    entries, seen = [], set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        entry = _parse_row(line.split("\t"), f"{path}:{lineno}")
        if entry.path in seen:
            raise ValueError(f"{path}:{lineno}: duplicate path {entry.path!r}")
        seen.add(entry.path)
        entries.append(entry)
    return entries


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_verified(path: Path, entry: Entry) -> bool:
    """True if `path` exists with the entry's size and sha256 (size first: it is free)."""
    return path.is_file() and path.stat().st_size == entry.size and sha256_file(path) == entry.sha256


def _verify_and_place(tmp: Path, dest: Path, entry: Entry, source: str) -> None:
    """Move `tmp` to `dest` if it matches the entry; otherwise delete it and raise naming both hashes."""
    size, digest = tmp.stat().st_size, sha256_file(tmp)
    if size != entry.size or digest != entry.sha256:
        tmp.unlink()
        raise DownloadError(
            f"{entry.path}: verification failed for the copy from {source}: expected sha256 {entry.sha256} "
            f"({entry.size} bytes), got {digest} ({size} bytes); the partial file was deleted")
    os.replace(tmp, dest)


def _copy_from_dir(entry: Entry, mirror: Path, dest: Path) -> None:
    """Copy from a local mirror directory via a temporary name."""
    src = mirror / entry.path
    if not src.is_file():
        raise DownloadError(f"{entry.path}: not found in mirror directory {mirror} (looked for {src})")
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, tmp)
    _verify_and_place(tmp, dest, entry, str(src))


def _http_download(url: str, entry: Entry, dest: Path, progress: bool, timeout: float = 60) -> None:
    """Download `url` to `<dest>.part`, resuming an existing .part when the server honours Range."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > entry.size:  # longer than the real file: cannot be a prefix of it
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "sgpose-download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have == entry.size:  # .part already complete
            _verify_and_place(part, dest, entry, url)
            return
        raise DownloadError(f"{entry.path}: HTTP {err.code} {err.reason} from {url}") from None
    except urllib.error.URLError as err:
        raise DownloadError(f"{entry.path}: cannot reach {url}: {err.reason}") from None
    with response:
        resumed = have > 0 and response.status == 206
        if have and not resumed:
            log.info("%s: server ignored the range request; restarting", entry.path)
            have = 0
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=entry.size, initial=have, unit="B", unit_scale=True, desc=Path(entry.path).name,
            leave=False, disable=not progress,
        ) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
    _verify_and_place(part, dest, entry, url)


def _source_url(entry: Entry, mirror: str | None) -> str:
    """The URL to fetch from: the http mirror, else the entry's own URL (mirror-only files say so)."""
    if mirror and mirror.startswith(("http://", "https://")):
        return mirror.rstrip("/") + "/" + entry.path
    if not entry.url:
        raise DownloadError(
            f"{entry.path}: this file is an excerpt with no public URL of its own; it is available only "
            f"from a mirror: set SGPOSE_MIRROR (or --mirror) to a directory or base URL holding it. "
            f"It is derived from the official COCO annotations, {OFFICIAL_ANNOTATIONS}")
    return entry.url


def fetch(entry: Entry, dest_root: str | Path, mirror: str | None = None, progress: bool = True) -> str:
    """Make `dest_root/entry.path` a verified copy; returns "skipped", "copied" or "downloaded"."""
    dest = Path(dest_root) / entry.path
    if is_verified(dest, entry):
        return "skipped"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # present but wrong: never keep an unverified file at the final name
        log.warning("%s: existing file fails verification; fetching again", dest)
        dest.unlink()
    if mirror and not mirror.startswith(("http://", "https://")):
        _copy_from_dir(entry, Path(mirror), dest)
        return "copied"
    _http_download(_source_url(entry, mirror), entry, dest, progress)
    return "downloaded"


def fetch_all(entries: list[Entry], dest_root: str | Path, mirror: str | None = None,
              progress: bool = True) -> dict[str, int]:
    """Fetch every entry (overall progress bar); returns counts per outcome."""
    counts = {"skipped": 0, "copied": 0, "downloaded": 0}
    with tqdm(total=sum(e.size for e in entries), unit="B", unit_scale=True, desc="download",
              disable=not progress) as bar:
        for entry in entries:
            counts[fetch(entry, dest_root, mirror, progress=progress)] += 1
            bar.update(entry.size)
    return counts
