"""`sgpose download` from a local mirror directory into a temporary raw_dir."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sgpose.cli import main as cli

REPO = Path(__file__).resolve().parents[2]


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
    stamp = json.loads(Path("raw/m.done").read_text())
    assert set(stamp["files"]) == {"s/images/a.jpg", "s/annotations/x.json"}
    shutil.rmtree(mirror)  # verified files are skipped: the re-run needs no source
    assert _run() == 0


def test_download_stage_cli_mirror_overrides_env(tmp_path, monkeypatch, capsys):
    mirror = _setup(tmp_path, monkeypatch)
    monkeypatch.setenv("SGPOSE_MIRROR", str(tmp_path / "elsewhere"))
    assert _run("--mirror", str(mirror)) == 0
    assert Path("raw/m.done").exists()


def test_download_stage_mirror_only_file(tmp_path, monkeypatch, capsys):
    _setup(tmp_path, monkeypatch)
    monkeypatch.delenv("SGPOSE_MIRROR", raising=False)
    assert _run() == 1
    err = capsys.readouterr().err
    assert "only from a mirror" in err and "SGPOSE_MIRROR" in err
    assert not Path("raw/m.done").exists()
