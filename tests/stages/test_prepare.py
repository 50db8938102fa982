"""`sgpose prepare` end to end on the real sample (read from the mirror) in a temporary directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sgpose.cli import main as cli
from sgpose.config import Paths, load_params
from sgpose.data.coco import INSTANCE_COLUMNS

REPO = Path(__file__).resolve().parents[2]
from conftest import MIRROR

SAMPLE = MIRROR / "coco_sample/annotations/person_keypoints_sample.json"
FIXTURE = MIRROR / "fixtures/coco/test_coco.json"


@pytest.fixture(autouse=True)
def _only_data_stages(monkeypatch):
    """cli.build_parser imports every stage module; keep download/prepare only so these tests do not
    depend on (or break with) the model stages, which are exercised by their own tests."""


def _setup(tmp_path: Path, monkeypatch, annotations: Path) -> list[str]:
    """Copy the repo's params.yaml into tmp, run from there; returns the CLI prefix args."""
    if not annotations.is_file():
        pytest.skip(f"{annotations} not available (set SGPOSE_MIRROR)")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return ["--params", "params.yaml", "--set", f"data.annotations={annotations}"]


def test_prepare_sample(tmp_path, monkeypatch):
    args = _setup(tmp_path, monkeypatch, SAMPLE)
    assert cli(["prepare", *args]) == 0
    params = load_params("params.yaml", [f"data.annotations={SAMPLE}"])
    paths = Paths(params)
    tables = {s: pd.read_parquet(paths.instances(s)) for s in ("train", "val")}
    gts = {s: json.loads(paths.split_annotations(s).read_text()) for s in ("train", "val")}
    assert all(tuple(t.columns) == INSTANCE_COLUMNS for t in tables.values())
    assert len(tables["train"]) + len(tables["val"]) == 707
    assert not set(tables["train"].image_id) & set(tables["val"].image_id)
    assert len(gts["val"]["images"]) == 48 and len(gts["train"]["images"]) == 192
    assert set(tables["val"].image_id) <= {img["id"] for img in gts["val"]["images"]}
    assert sum(len(g["annotations"]) for g in gts.values()) == 1029
    assert isinstance(tables["val"].keypoints.iloc[0][0], float) and len(tables["val"].keypoints.iloc[0]) == 51
    before = {s: paths.instances(s).read_bytes() for s in ("train", "val")}
    assert cli(["prepare", *args]) == 0  # deterministic: identical tables on a re-run
    assert all(paths.instances(s).read_bytes() == before[s] for s in before)
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_prepare_empty_split_is_an_error(tmp_path, monkeypatch, capsys):
    args = _setup(tmp_path, monkeypatch, FIXTURE)
    assert cli(["prepare", *args, "--set", "prepare.min_keypoints=18"]) == 1
    err = capsys.readouterr().err
    assert "test_coco.json" in err and "split is empty" in err
    assert not Path("results/sample/instances_train.parquet").exists()


def test_prepare_missing_annotations(tmp_path, monkeypatch, capsys):
    args = _setup(tmp_path, monkeypatch, FIXTURE)
    assert cli(["prepare", *args, "--set", "data.annotations=data/raw/none.json"]) == 1
    assert "data/raw/none.json: file not found" in capsys.readouterr().err
