"""Fetch the files named in a manifest (path, url, sha256, size) and verify every byte.

A file appears at its final name only after its sha256 and size check out, so a present file is a
verified file and re-runs skip it. Sources, in order of preference: a mirror (a local directory or
an http(s) base URL holding the same relative paths, `SGPOSE_MIRROR`), else the entry's own URL.
HTTP downloads go to `<dest>.part` and resume from there with a `Range` request.

Checksum column: a full sha256 (64 hex); `md5:<32 hex>` where the publisher gives only an md5 (the
COCO zips); `none` where nothing is published (accepted with a warning: the stage records the
file's sha256 in its stamp so it can be pinned). URL column: an http(s) URL, empty (mirror only), or
`manual:<page>` for hosts that need a browser (Google Drive, OneDrive): the downloader prints the
steps and where to put the file, and verifies it once placed. The optional `extract` column names a
directory (relative to the download root) a zip archive is extracted into (`sgpose.data.archives`).
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sgpose.core.io import file_digest
from sgpose.data.archives import extract_zip

log = logging.getLogger(__name__)

COLUMNS = ("path", "url", "sha256", "size")
OPTIONAL_COLUMNS = ("extract",)
MANUAL = "manual:"
OFFICIAL_ANNOTATIONS = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
CHUNK = 1 << 16


@dataclass(frozen=True)
class Entry:
    """One file: `path` relative to the mirror root and to the download directory.

    Manifest rows carry the full sha256 and size. Files whose publisher gives only a hash prefix
    (mmpose names checkpoints `<name>-<first 8 hex of sha256>_<date>.pth`) leave `sha256` empty,
    set `sha256_prefix`, and may leave `size` unknown (None). Publishers of an md5 only set `md5`;
    `unpinned` marks a file with no published checksum at all (accepted, with a warning).
    """

    path: str
    url: str
    sha256: str
    size: int | None
    sha256_prefix: str = ""
    md5: str = ""
    unpinned: bool = False
    extract: str = ""  # zip archives: extract into this directory (relative to the download root)

    def __post_init__(self) -> None:
        if not (self.sha256 or self.sha256_prefix or self.md5 or self.unpinned):
            raise ValueError(f"{self.path}: an entry needs a sha256 or a sha256_prefix (or an md5, or "
                             "`none` in the manifest when nothing is published) to be verified")

    @property
    def algorithm(self) -> str:
        """The hash the entry is verified with: md5 where that is all the publisher gives."""
        return "md5" if self.md5 and not self.sha256 else "sha256"

    @property
    def manual(self) -> bool:
        """A file behind a browser-only host: fetched by hand, verified by us."""
        return self.url.startswith(MANUAL)

    def expected(self) -> str:
        """The checks in words, for error messages."""
        if self.algorithm == "md5":
            digest = f"md5 {self.md5}"
        elif self.unpinned and not (self.sha256 or self.sha256_prefix):
            digest = "any content (no checksum published)"
        else:
            digest = "sha256 " + (self.sha256 or f"{self.sha256_prefix}... (published prefix)")
        return digest + (f" ({self.size} bytes)" if self.size is not None else "")

    def matches(self, size: int, digest: str) -> bool:
        """True if a file of this size and digest (of `self.algorithm`) is the entry's file."""
        if self.size is not None and size != self.size:
            return False
        if self.algorithm == "md5":
            return digest == self.md5
        if self.sha256 or self.sha256_prefix:
            return digest == self.sha256 if self.sha256 else digest.startswith(self.sha256_prefix)
        return self.unpinned


class DownloadError(ValueError):
    """A file that could not be fetched or failed verification; the message names the file."""


def _is_hex(text: str, n: int) -> bool:
    return len(text) == n and all(c in "0123456789abcdef" for c in text)


def _relative(path: str, where: str, what: str = "path") -> str:
    if not path or path.startswith("/") or ".." in Path(path).parts:
        raise ValueError(f"{where}: {what} {path!r} must be relative and stay inside the download directory")
    return path


def _checksum_fields(digest: str, where: str) -> dict:
    """The Entry fields of a checksum cell: sha256 hex, `md5:<hex>` or `none`."""
    if _is_hex(digest, 64):
        return {"sha256": digest}
    if digest.startswith("md5:") and _is_hex(digest[4:], 32):
        return {"sha256": "", "md5": digest[4:]}
    if digest == "none":
        return {"sha256": "", "unpinned": True}
    raise ValueError(f"{where}: sha256 (checksum) {digest!r} is not 64 lowercase hex digits (sha256), "
                     "md5:<32 hex digits>, or `none` (nothing published)")


def _parse_row(fields: list[str], where: str, ncols: int = len(COLUMNS)) -> Entry:
    """Validate one manifest row's fields (why: a typo should fail here, not after a long download)."""
    if len(fields) < len(COLUMNS) or len(fields) > ncols:
        raise ValueError(f"{where}: expected {len(COLUMNS)} tab-separated fields {COLUMNS}"
                         f"{' (+ extract)' if ncols > len(COLUMNS) else ''}, got {len(fields)}")
    path, url, digest, size, *rest = (f.strip() for f in fields)
    extract = rest[0] if rest else ""
    _relative(path, where)
    if extract:
        _relative(extract, where, "extract directory")
    if not (size.isdigit() or size == "-"):
        raise ValueError(f"{where}: size {size!r} is not a non-negative integer (or `-`: unknown)")
    return Entry(path, url, size=int(size) if size.isdigit() else None, extract=extract,
                 **_checksum_fields(digest, where))


def read_manifest(path: str | Path) -> list[Entry]:
    """Read a manifest TSV with header `path url sha256 size`; errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: manifest not found") from None
    header = tuple(h.strip() for h in lines[0].split("\t")) if lines else ()
    if header not in (COLUMNS, COLUMNS + OPTIONAL_COLUMNS):
        raise ValueError(f"{path}:1: header must be the tab-separated columns {COLUMNS} (optionally + extract)")
    entries, seen = [], set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        entry = _parse_row(line.split("\t"), f"{path}:{lineno}", len(header))
        if entry.path in seen:
            raise ValueError(f"{path}:{lineno}: duplicate path {entry.path!r}")
        seen.add(entry.path)
        entries.append(entry)
    return entries


def is_verified(path: Path, entry: Entry) -> bool:
    """True if `path` exists with the entry's size and checksum (size first: it is free)."""
    if not path.is_file() or (entry.size is not None and path.stat().st_size != entry.size):
        return False
    if entry.unpinned and entry.algorithm == "sha256" and not (entry.sha256 or entry.sha256_prefix):
        return True  # nothing to compare with (the stage warns and records the sha256)
    return entry.matches(path.stat().st_size, file_digest(path, entry.algorithm))


def _verify_and_place(tmp: Path, dest: Path, entry: Entry, source: str) -> None:
    """Move `tmp` to `dest` if it matches the entry; otherwise delete it and raise naming both hashes."""
    size, digest = tmp.stat().st_size, file_digest(tmp, entry.algorithm)
    if not entry.matches(size, digest):
        tmp.unlink()
        raise DownloadError(
            f"{entry.path}: verification failed for the copy from {source}: expected {entry.expected()}, "
            f"got {digest} ({size} bytes); the partial file was deleted")
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
    if entry.size is not None and have > entry.size:  # longer than the real file: cannot be a prefix of it
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "sgpose-download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and have == (entry.size or have):  # .part already complete
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
        total = entry.size or (have + int(response.headers.get("Content-Length") or 0)) or None
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=Path(entry.path).name,
            leave=False, disable=not progress,
        ) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
                if response.length:  # http.client ends a cut-off body silently; Content-Length tells
                    raise http.client.IncompleteRead(b"", response.length)
            except (http.client.HTTPException, OSError) as err:  # dropped connection: keep .part to resume
                raise DownloadError(f"{entry.path}: download from {url} interrupted after {out.tell()} bytes "
                                    f"({err!r}); run again to resume from {part}") from None
    _verify_and_place(part, dest, entry, url)


def manual_steps(entry: Entry, dest: Path, mirror: str | None) -> str:
    """What to do by hand for a browser-only file, and how it will be checked."""
    where = f" (or into the mirror directory as {Path(mirror) / entry.path})" if mirror and not mirror.startswith(
        ("http://", "https://")) else ""
    return (f"{entry.path}: cannot be downloaded automatically (the host needs a browser). Manual steps: "
            f"1. open {entry.url[len(MANUAL):]} and download {Path(entry.path).name}; "
            f"2. put it at {dest}{where}; 3. run `sgpose download` again: it is then verified against "
            f"{entry.expected()}")


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
    local = mirror and not mirror.startswith(("http://", "https://"))
    if entry.manual and not (mirror and (not local or (Path(mirror) / entry.path).is_file())):
        raise DownloadError(manual_steps(entry, dest, mirror))
    if local:
        _copy_from_dir(entry, Path(mirror), dest)
        return "copied"
    _http_download(_source_url(entry, mirror), entry, dest, progress)
    return "downloaded"


def fetch_all(entries: list[Entry], dest_root: str | Path, mirror: str | None = None,
              progress: bool = True) -> dict[str, int]:
    """Fetch every entry (overall progress bar); returns counts per outcome."""
    counts = {"skipped": 0, "copied": 0, "downloaded": 0, "extracted": 0}
    manual = []
    with tqdm(total=sum(e.size or 0 for e in entries), unit="B", unit_scale=True, desc="download",
              disable=not progress) as bar:
        for entry in entries:
            try:
                counts[fetch(entry, dest_root, mirror, progress=progress)] += 1
            except DownloadError as err:
                if not entry.manual:
                    raise
                manual.append(str(err))  # report every hand-fetched file at once, not one per run
                continue
            bar.update(entry.size or 0)
            if entry.unpinned:
                log.warning("%s: no published checksum; accepted as is (its sha256 is recorded in the stamp)",
                            entry.path)
            if entry.extract:
                counts["extracted"] += extract_zip(Path(dest_root) / entry.path, Path(dest_root) / entry.extract)
    if manual:
        raise DownloadError(f"{len(manual)} file(s) need manual steps:\n" + "\n".join(manual))
    return counts
