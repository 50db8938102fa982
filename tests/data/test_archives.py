"""Download with extraction, md5-only and unpinned entries, manual sources, and the shipped full-data
manifests: against a mirror directory and the local HTTP server (tests/conftest.py)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from conftest import server_url
from sgpose.data.archives import extract_zip, is_extracted, marker_path
from sgpose.data.download import DownloadError, Entry, fetch, fetch_all, read_manifest

REPO = Path(__file__).resolve().parents[2]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


ZIP = _zip({"val2017/a.jpg": b"A" * 100, "val2017/b.jpg": b"B" * 50})


def test_extract_atomic_and_idempotent(tmp_path):
    archive = tmp_path / "val2017.zip"
    archive.write_bytes(ZIP)
    target = tmp_path / "coco"
    assert extract_zip(archive, target) == 1
    assert (target / "val2017/a.jpg").read_bytes() == b"A" * 100
    assert is_extracted(archive, target) and not list(target.glob(".tmp-extract-*"))
    assert extract_zip(archive, target) == 0  # marker + unchanged archive: nothing to do
    (target / "val2017").rename(tmp_path / "gone")  # entries missing: extracted again
    assert extract_zip(archive, target) == 1 and (target / "val2017/b.jpg").exists()


def test_interrupted_extraction_is_redone(tmp_path):
    archive = tmp_path / "val2017.zip"
    archive.write_bytes(ZIP)
    target = tmp_path / "coco"
    (target / "val2017").mkdir(parents=True)
    (target / "val2017/partial.jpg").write_bytes(b"x")  # a half-placed run: no marker
    assert extract_zip(archive, target) == 1
    assert sorted(p.name for p in (target / "val2017").iterdir()) == ["a.jpg", "b.jpg"]
    assert marker_path(archive, target).is_file()


def test_bad_and_unsafe_archives(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.zip: not a valid zip"):
        extract_zip(bad, tmp_path / "out")
    evil = tmp_path / "evil.zip"
    evil.write_bytes(_zip({"../escape.txt": b"x"}))
    with pytest.raises(ValueError, match="evil.zip: unsafe member"):
        extract_zip(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_md5_entry_downloads_and_extracts_over_http(server, tmp_path):
    server.files["zips/val2017.zip"] = ZIP
    entry = Entry("coco/zips/val2017.zip", server_url(server, "zips/val2017.zip"), "", len(ZIP),
                  md5=hashlib.md5(ZIP).hexdigest(), extract="coco")
    counts = fetch_all([entry], tmp_path, None, progress=False)
    assert counts == {"skipped": 0, "copied": 0, "downloaded": 1, "extracted": 1}
    assert (tmp_path / "coco/val2017/a.jpg").read_bytes() == b"A" * 100
    assert fetch_all([entry], tmp_path, None, progress=False) == {
        "skipped": 1, "copied": 0, "downloaded": 0, "extracted": 0}
    wrong = Entry("coco/zips/x.zip", server_url(server, "zips/val2017.zip"), "", len(ZIP), md5="0" * 32)
    with pytest.raises(DownloadError, match=r"x.zip: verification failed.*expected md5 0{32}"):
        fetch(wrong, tmp_path, None, progress=False)


def test_manual_entry_prints_steps_then_verifies_placed_file(tmp_path):
    data = b'[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]'
    entry = Entry("coco/person_detection_results/det.json", "manual:https://example.org/page", "", len(data),
                  unpinned=True)
    with pytest.raises(DownloadError, match=r"det.json: cannot be downloaded automatically.*open "
                       r"https://example.org/page.*put it at .*raw/coco/person_detection_results/det.json"):
        fetch_all([entry], tmp_path / "raw", None, progress=False)
    placed = tmp_path / "raw" / entry.path
    placed.parent.mkdir(parents=True, exist_ok=True)  # fetch made it
    placed.write_bytes(data[:-3])  # wrong size: refused, and removed
    with pytest.raises(DownloadError, match="det.json: cannot be downloaded automatically"):
        fetch(entry, tmp_path / "raw", None, progress=False)
    assert not placed.exists()
    placed.write_bytes(data)
    assert fetch(entry, tmp_path / "raw", None, progress=False) == "skipped"


def test_manual_entry_from_mirror_directory(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "crowdpose/json").mkdir(parents=True)
    (mirror / "crowdpose/json/crowdpose_val.json").write_text("{}")
    (mirror / "crowdpose/images.zip").write_bytes(_zip({"images/1.jpg": b"j"}))
    entries = [Entry("crowdpose/json/crowdpose_val.json", "manual:https://x", "", None, unpinned=True),
               Entry("crowdpose/images.zip", "manual:https://x", "", None, unpinned=True, extract="crowdpose")]
    counts = fetch_all(entries, tmp_path / "raw", str(mirror), progress=False)
    assert counts["copied"] == 2 and counts["extracted"] == 1
    assert (tmp_path / "raw/crowdpose/images/1.jpg").read_bytes() == b"j"


def test_shipped_full_manifests():
    coco = {e.path: e for e in read_manifest(REPO / "data/manifests/coco2017.tsv")}
    train = coco["coco/zips/train2017.zip"]
    assert (train.md5, train.size, train.extract) == ("cced6f7f71b7629ddf16f17bbcfab6b2", 19336861798, "coco")
    assert train.url == "http://images.cocodataset.org/zips/train2017.zip" and train.algorithm == "md5"
    assert coco["coco/zips/val2017.zip"].md5 == "442b8da7639aecaf257c1dceb8ba8c80"
    assert coco["coco/zips/annotations_trainval2017.zip"].size == 252907541
    det = coco["coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"]
    assert det.manual and det.unpinned
    crowd = read_manifest(REPO / "data/manifests/crowdpose.tsv")
    assert {Path(e.path).name for e in crowd} >= {"images.zip", "crowdpose_train.json", "crowdpose_val.json"}
    assert all(e.manual for e in crowd)


@pytest.mark.parametrize("row, message", [
    ("a.zip\thttp://x\tmd5:123\t3\t\n", r":2: sha256 \(checksum\) 'md5:123'"),
    ("a.zip\thttp://x\tnone\tbig\t\n", r":2: size 'big'"),
    ("a.zip\thttp://x\tnone\t-\t../up\n", r":2: extract directory '../up'"),
])
def test_malformed_extended_manifest(tmp_path, row, message):
    path = tmp_path / "m.tsv"
    path.write_text("path\turl\tsha256\tsize\textract\n" + row)
    with pytest.raises(ValueError, match=f"m.tsv{message}"):
        read_manifest(path)
