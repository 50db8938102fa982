"""Regenerate data/sample/manifest.tsv from a local copy of the shared sample (maintainers only).

The sha256 of every file is taken from the sample's PROVENANCE.md (the record of where each file
came from) and checked against the bytes on disk; sizes are measured. Images get their public COCO
URL; the annotation and detection excerpts have no public URL of their own (empty url: mirror only).

    python scripts/make_sample_manifest.py /work/shared/data data/sample/manifest.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

SAMPLE = "coco_sample"
IMAGE_URL = "http://images.cocodataset.org/val2017/{name}"
ROW = re.compile(r"^\|\s*(?P<file>[^|]+?)\s*\|.*\|\s*(?P<sha>[0-9a-f]{64})\s*\|\s*$")


def provenance_hashes(provenance: Path) -> dict[str, str]:
    """file (relative to the sample) -> sha256, from the PROVENANCE.md tables."""
    out = {}
    for line in provenance.read_text().splitlines():
        m = ROW.match(line)
        if m:
            out[m["file"]] = m["sha"]
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mirror", type=Path, help="directory holding coco_sample/")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    root = args.mirror / SAMPLE
    hashes = provenance_hashes(root / "PROVENANCE.md")
    rows = []
    for rel in sorted(hashes, key=lambda r: (not r.startswith("annotations"), not r.startswith("person"), r)):
        path = root / rel
        got = sha256(path)
        if got != hashes[rel]:
            raise SystemExit(f"{path}: sha256 {got} differs from PROVENANCE.md {hashes[rel]}")
        url = IMAGE_URL.format(name=path.name) if rel.startswith("images/") else ""
        rows.append(f"{SAMPLE}/{rel}\t{url}\t{got}\t{path.stat().st_size}")
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {"PROVENANCE.md"}
    if on_disk != set(hashes):
        raise SystemExit(f"files and PROVENANCE.md disagree: {sorted(on_disk ^ set(hashes))}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("path\turl\tsha256\tsize\n" + "\n".join(rows) + "\n")
    print(f"{args.out}: {len(rows)} files")


if __name__ == "__main__":
    main()
