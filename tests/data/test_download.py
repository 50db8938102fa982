"""sgpose.data.download against a local HTTP server with Range support, a mirror directory and the
real shared mirror (for the shipped manifest's checksums)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import HTTP_PAYLOAD as PAYLOAD
from conftest import MIRROR
from conftest import server_url as _url
from sgpose.core.io import sha256_file
from sgpose.data.download import DownloadError, Entry, fetch, fetch_all, read_manifest

REPO = Path(__file__).resolve().parents[2]


def _entry(srv, data: bytes = PAYLOAD, url: str | None = None) -> Entry:
    return Entry("d/a.bin", url if url is not None else _url(srv), hashlib.sha256(data).hexdigest(), len(data))


def test_download_verifies(server, tmp_path):
    assert fetch(_entry(server), tmp_path, None, progress=False) == "downloaded"
    assert (tmp_path / "d/a.bin").read_bytes() == PAYLOAD
    assert not (tmp_path / "d/a.bin.part").exists()


def test_resume_uses_range(server, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a.bin.part").write_bytes(PAYLOAD[:5000])
    fetch(_entry(server), tmp_path, None, progress=False)
    assert server.requests == [("/d/a.bin", "bytes=5000-")]
    assert sha256_file(tmp_path / "d/a.bin") == hashlib.sha256(PAYLOAD).hexdigest()


def test_restart_when_range_ignored(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a.bin.part").write_bytes(b"x" * 5000)  # garbage prefix: must be discarded
    fetch(_entry(server), tmp_path, None, progress=False)
    assert (tmp_path / "d/a.bin").read_bytes() == PAYLOAD


def test_wrong_checksum_rejected(server, tmp_path):
    bad = Entry("d/a.bin", _url(server), "0" * 64, len(PAYLOAD))
    with pytest.raises(DownloadError, match=r"d/a.bin.*expected sha256 0{64}.*got " + hashlib.sha256(PAYLOAD).hexdigest()):
        fetch(bad, tmp_path, None, progress=False)
    assert not (tmp_path / "d/a.bin").exists()
    assert not (tmp_path / "d/a.bin.part").exists()


def test_http_mirror_and_404(server, tmp_path):
    entry = _entry(server, url="")  # no public URL: only the mirror has it
    assert fetch(entry, tmp_path, f"http://127.0.0.1:{server.server_address[1]}/", progress=False) == "downloaded"
    missing = Entry("d/missing.bin", _url(server, "d/missing.bin"), "0" * 64, 1)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(missing, tmp_path, None, progress=False)


def test_mirror_only_file_without_mirror(tmp_path):
    entry = Entry("coco_sample/annotations/x.json", "", "0" * 64, 1)
    with pytest.raises(DownloadError, match=r"only from a mirror.*SGPOSE_MIRROR.*annotations_trainval2017\.zip"):
        fetch(entry, tmp_path, None, progress=False)


def test_mirror_directory_copy_and_skip(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "d").mkdir(parents=True)
    (mirror / "d/a.bin").write_bytes(PAYLOAD)
    entry = Entry("d/a.bin", "http://127.0.0.1:9/never-used", hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD))
    dest = tmp_path / "raw"
    assert fetch_all([entry], dest, str(mirror), progress=False) == {
        "skipped": 0, "copied": 1, "downloaded": 0, "extracted": 0}
    assert (dest / "d/a.bin").read_bytes() == PAYLOAD
    (mirror / "d/a.bin").unlink()  # a verified file is skipped without touching any source
    assert fetch(entry, dest, str(mirror), progress=False) == "skipped"


def test_corrupt_existing_file_is_refetched(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "d").mkdir(parents=True)
    (mirror / "d/a.bin").write_bytes(PAYLOAD)
    (tmp_path / "raw/d").mkdir(parents=True)
    (tmp_path / "raw/d/a.bin").write_bytes(b"corrupt")
    entry = Entry("d/a.bin", "", hashlib.sha256(PAYLOAD).hexdigest(), len(PAYLOAD))
    assert fetch(entry, tmp_path / "raw", str(mirror), progress=False) == "copied"
    assert (tmp_path / "raw/d/a.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize("body, message", [
    ("path\turl\tsha256\n", "header"),
    ("path\turl\tsha256\tsize\na.bin\t\tabc\t3\n", r":2: sha256"),
    ("path\turl\tsha256\tsize\na.bin\t\t" + "0" * 64 + "\tx\n", r":2: size"),
    ("path\turl\tsha256\tsize\na.bin\t" + "0" * 64 + "\t3\n", r":2: expected 4"),
    ("path\turl\tsha256\tsize\n../a.bin\t\t" + "0" * 64 + "\t3\n", r":2: path"),
])
def test_malformed_manifest(tmp_path, body, message):
    path = tmp_path / "m.tsv"
    path.write_text(body)
    with pytest.raises(ValueError, match=f"m.tsv.*{message}"):
        read_manifest(path)


def test_shipped_manifest_matches_mirror():
    entries = read_manifest(REPO / "data/sample/manifest.tsv")
    assert len(entries) == 242
    assert sum(e.path.startswith("coco_sample/images/") for e in entries) == 240
    assert all(e.url == f"http://images.cocodataset.org/val2017/{Path(e.path).name}"
               for e in entries if "/images/" in e.path)
    if not MIRROR.is_dir():
        pytest.skip(f"no mirror at {MIRROR} (set SGPOSE_MIRROR)")
    for entry in entries[:3] + entries[-2:]:  # both json excerpts and a few images
        path = MIRROR / entry.path
        assert path.stat().st_size == entry.size and sha256_file(path) == entry.sha256, entry.path


def _prefix_entry(srv, prefix: str) -> Entry:
    """A checkpoint-style entry: only a published sha256 prefix, size unknown."""
    return Entry("d/a.bin", _url(srv), "", None, sha256_prefix=prefix)


def test_prefix_entry_resumes_after_a_cut(server, tmp_path):
    entry = _prefix_entry(server, hashlib.sha256(PAYLOAD).hexdigest()[:8])
    server.cut_after = 3000
    with pytest.raises(DownloadError, match=r"d/a.bin.*interrupted after 3000 bytes.*resume"):
        fetch(entry, tmp_path, None, progress=False)
    assert (tmp_path / "d/a.bin.part").stat().st_size == 3000 and not (tmp_path / "d/a.bin").exists()
    assert fetch(entry, tmp_path, None, progress=False) == "downloaded"
    assert server.requests[-1] == ("/d/a.bin", "bytes=3000-")
    assert (tmp_path / "d/a.bin").read_bytes() == PAYLOAD and not (tmp_path / "d/a.bin.part").exists()
    assert fetch(entry, tmp_path, None, progress=False) == "skipped"


def test_prefix_entry_complete_part_is_placed(server, tmp_path):
    entry = _prefix_entry(server, hashlib.sha256(PAYLOAD).hexdigest()[:8])
    (tmp_path / "d").mkdir()
    (tmp_path / "d/a.bin.part").write_bytes(PAYLOAD)  # finished before the rename: server answers 416
    assert fetch(entry, tmp_path, None, progress=False) == "downloaded"
    assert (tmp_path / "d/a.bin").read_bytes() == PAYLOAD


def test_prefix_entry_wrong_checksum_rejected(server, tmp_path):
    entry = _prefix_entry(server, "deadbeef")
    with pytest.raises(DownloadError, match=r"d/a.bin.*expected sha256 deadbeef\.\.\. \(published prefix\), got "
                       + hashlib.sha256(PAYLOAD).hexdigest()):
        fetch(entry, tmp_path, None, progress=False)
    assert not (tmp_path / "d/a.bin").exists() and not (tmp_path / "d/a.bin.part").exists()


def test_entry_needs_a_checksum():
    with pytest.raises(ValueError, match="x.bin: an entry needs a sha256 or a sha256_prefix"):
        Entry("x.bin", "http://example.invalid/x.bin", "", None)
