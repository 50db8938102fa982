"""`sgpose download` from a local mirror directory into a temporary raw_dir."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import server_url
from sgpose.cli import main as cli
from sgpose.data.download import DownloadError
from sgpose.models import fetch as zoo_fetch
from sgpose.models import zoo

REPO = Path(__file__).resolve().parents[2]
STAMP = Path("results/sample/download.json")  # the primary dataset's (params.yaml: sample)


@pytest.fixture(autouse=True)
def _only_data_stages(monkeypatch):
    """cli.build_parser imports every stage module; keep download/prepare only so these tests do not
    depend on (or break with) the model stages, which are exercised by their own tests."""


def _setup(tmp_path: Path, monkeypatch) -> Path:
    """A two-file manifest whose files live in tmp/mirror; the stage runs from tmp."""
    mirror = tmp_path / "mirror"
    (mirror / "s/images").mkdir(parents=True)
    files = {"s/images/a.jpg": b"image bytes", "s/annotations/x.json": b"{}"}
    rows = ["path\turl\tsha256\tsize"]
    for rel, data in files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
        rows.append(f"{rel}\t\t{hashlib.sha256(data).hexdigest()}\t{len(data)}")
    (tmp_path / "m.tsv").write_text("\n".join(rows) + "\n")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return mirror


def _run(*extra: str) -> int:
    return cli(["download", "--params", "params.yaml", "--set", "data.manifest=m.tsv",
                "--set", "data.raw_dir=raw", "--no-progress", *extra])


def test_download_stage_env_mirror(tmp_path, monkeypatch):
    mirror = _setup(tmp_path, monkeypatch)
    monkeypatch.setenv("SGPOSE_MIRROR", str(mirror))
    assert _run() == 0
    assert Path("raw/s/images/a.jpg").read_bytes() == b"image bytes"
    stamp = json.loads(STAMP.read_text())
    assert set(stamp["files"]) == {"s/images/a.jpg", "s/annotations/x.json"}
    shutil.rmtree(mirror)  # verified files are skipped: the re-run needs no source
    assert _run() == 0


def test_download_stage_cli_mirror_overrides_env(tmp_path, monkeypatch, capsys):
    mirror = _setup(tmp_path, monkeypatch)
    monkeypatch.setenv("SGPOSE_MIRROR", str(tmp_path / "elsewhere"))
    assert _run("--mirror", str(mirror)) == 0
    assert STAMP.exists()


def test_download_stage_mirror_only_file(tmp_path, monkeypatch, capsys):
    _setup(tmp_path, monkeypatch)
    monkeypatch.delenv("SGPOSE_MIRROR", raising=False)
    assert _run() == 1
    err = capsys.readouterr().err
    assert "only from a mirror" in err and "SGPOSE_MIRROR" in err
    assert not STAMP.exists()


def _registry_with_local_checkpoint(server, monkeypatch, payload: bytes, prefix: str) -> str:
    """Point a registry entry at the test server (the file name carries the sha256 prefix, as mmpose's)."""

    name = f"res50_coco_256x192-{prefix}_20200709.pth"
    server.files[f"ckpt/{name}"] = payload
    entry = zoo.ZooCheckpoint(server_url(server, f"ckpt/{name}"), "simple_baseline", depth=50)
    monkeypatch.setitem(zoo.CHECKPOINTS, "mmpose:res50_coco_256x192", entry)
    return name


def test_a_registry_checkpoint_is_fetched_resumably_by_the_stage_that_imports_it(tmp_path, monkeypatch, server):
    """train_backbone fetches its own registry checkpoint (zoo_fetch.fetch_checkpoint), not the dataset's download
    stage: the download stage tracks only the dataset's files."""
    monkeypatch.chdir(tmp_path)
    payload = bytes(range(256)) * 64
    name = _registry_with_local_checkpoint(server, monkeypatch, payload, hashlib.sha256(payload).hexdigest()[:8])
    server.cut_after = 5000  # the first attempt drops: nothing at the final name, the .part is kept
    with pytest.raises(DownloadError):
        zoo_fetch.fetch_checkpoint("mmpose:res50_coco_256x192", tmp_path, None, progress=False)
    assert not Path(f"checkpoints/{name}").exists() and Path(f"checkpoints/{name}.part").stat().st_size == 5000
    path = zoo_fetch.fetch_checkpoint("mmpose:res50_coco_256x192", tmp_path, None, progress=False)  # resumes
    assert server.requests[-1][1] == "bytes=5000-"
    assert path.read_bytes() == payload and not Path(f"checkpoints/{name}.part").exists()


def test_a_wrong_checkpoint_is_refused(tmp_path, monkeypatch, server):
    monkeypatch.chdir(tmp_path)
    name = _registry_with_local_checkpoint(server, monkeypatch, b"tampered weights", "00000000")
    with pytest.raises(DownloadError, match=f"{name}: verification failed"):
        zoo_fetch.fetch_checkpoint("mmpose:res50_coco_256x192", tmp_path, None, progress=False)
    assert list(Path("checkpoints").iterdir()) == []  # nothing half-written left
