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


def test_a_registry_checkpoint_is_fetched_resumably(tmp_path, monkeypatch, server):
    """The download stage fetches the registry checkpoints of its dataset's backbones (zoo_fetch.fetch_checkpoint),
    resuming a dropped transfer."""
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


def test_the_download_stage_fetches_its_backbones_registry_checkpoints_and_records_them(tmp_path, monkeypatch, server,
                                                                                      capsys):
    """Issue 37: the downloader is the download stage's alone (train_backbone only reads checkpoints, so an edit of
    data/download.py retrains nothing); the stamp records each checkpoint's sha256, so a new checkpoint re-runs the
    stages after it. train_backbone without the file names the command that fetches it."""
    mirror = _setup(tmp_path, monkeypatch)
    payload = bytes(range(256)) * 16
    name = _registry_with_local_checkpoint(server, monkeypatch, payload, hashlib.sha256(payload).hexdigest()[:8])
    monkeypatch.setenv("SGPOSE_MIRROR", str(mirror))
    assert _run("--set", "backbone.checkpoint=mmpose:res50_coco_256x192", "--backbone", "sb_r18") == 0
    assert Path(f"checkpoints/{name}").read_bytes() == payload
    assert json.loads(STAMP.read_text())["checkpoints"] == {"mmpose:res50_coco_256x192": hashlib.sha256(payload).hexdigest()}
    Path(f"checkpoints/{name}").unlink()
    args = ["train_backbone", "--params", "params.yaml", "--backbone", "cp_r18", "--set",
            "backbone.checkpoint=mmpose:res50_coco_256x192", "--set", "backbone.depth=50", "--set", "layout=coco",
            "--set", "backbone.input_size=[256,192]", "--set", "backbone.heatmap_size=[64,48]",
            "--set", "backbone.deconv_channels=256"]
    assert cli(args) == 1
    assert "run `sgpose download --dataset crowdpose_sample`: it fetches the registry checkpoints" in capsys.readouterr().err


def test_the_stage_that_trains_backbones_does_not_hold_the_downloader():
    from sgpose.runtime.imports import module_files

    files = {p.name for p in module_files("sgpose.stages.train_backbone")}
    assert "download.py" not in files and "fetch.py" not in files and "archives.py" not in files
