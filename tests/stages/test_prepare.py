"""`sgpose prepare` end to end on the real sample (read from the mirror) in a temporary directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sgpose.cli import main as cli
from sgpose.config.paths import Paths
from sgpose.config.selection import load_params
from sgpose.data.coco import INSTANCE_COLUMNS

REPO = Path(__file__).resolve().parents[2]
from conftest import MIRROR, require

SAMPLE = MIRROR / "coco_sample/annotations/person_keypoints_sample.json"
FIXTURE = MIRROR / "fixtures/coco/test_coco.json"


@pytest.fixture(autouse=True)
def _only_data_stages(monkeypatch):
    """cli.build_parser imports every stage module; keep download/prepare only so these tests do not
    depend on (or break with) the model stages, which are exercised by their own tests."""


FIX_DET = MIRROR / "fixtures/coco/test_coco_det_AP_H_56.json"
SAMPLE_DET = MIRROR / "coco_sample/person_detection_results/COCO_val2017_detections_AP_H_56_person_sample.json"
CROWD = MIRROR / "fixtures/crowdpose/test_crowdpose.json"
CROWD_DET = MIRROR / "fixtures/crowdpose/test_crowdpose_det_AP_40.json"
PREPARED = Path("results/sample/prepared")


def _setup(tmp_path: Path, monkeypatch, annotations: Path, detections: Path | None = None) -> list[str]:
    """Copy the repo's params.yaml into tmp, run from there; returns the CLI prefix args (the
    primary dataset `sample` pointed at the mirror's annotations and the matching detections)."""
    detections = detections or (SAMPLE_DET if annotations == SAMPLE else FIX_DET)
    require(annotations)
    require(detections)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return ["--params", "params.yaml", "--set", f"data.annotations={annotations}",
            "--set", f"prepare.detections={detections}"]


def test_prepare_sample(tmp_path, monkeypatch):
    args = _setup(tmp_path, monkeypatch, SAMPLE)
    assert cli(["prepare", *args]) == 0
    params = load_params("params.yaml", args[3::2])
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
    before = {s: paths.instances(s).read_bytes() for s in ("train", "val", "val_det")}
    assert cli(["prepare", *args]) == 0  # deterministic: identical tables on a re-run
    assert all(paths.instances(s).read_bytes() == before[s] for s in before)
    assert sorted(p.name for p in PREPARED.iterdir()) == [
        "annotations_train.json", "annotations_val.json", "instances_train.parquet", "instances_val.parquet",
        "instances_val_det.parquet"]  # val_det is scored against val's ground truth: no file of its own
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_prepare_empty_split_is_an_error(tmp_path, monkeypatch, capsys):
    args = _setup(tmp_path, monkeypatch, FIXTURE)
    assert cli(["prepare", *args, "--set", "prepare.min_keypoints=18"]) == 1
    err = capsys.readouterr().err
    assert "test_coco.json" in err and "split is empty" in err
    assert not (PREPARED / "instances_train.parquet").exists()


def test_prepare_missing_annotations(tmp_path, monkeypatch, capsys):
    args = _setup(tmp_path, monkeypatch, FIXTURE)
    assert cli(["prepare", *args, "--set", "data.annotations=data/raw/none.json"]) == 1
    assert "data/raw/none.json: file not found" in capsys.readouterr().err




def test_prepare_detection_boxes_on_the_sample(tmp_path, monkeypatch):
    args = _setup(tmp_path, monkeypatch, SAMPLE)
    assert cli(["prepare", *args]) == 0
    det = pd.read_parquet(PREPARED / "instances_val_det.parquet")
    val = pd.read_parquet(PREPARED / "instances_val.parquet")
    gt_val = json.loads((PREPARED / "annotations_val.json").read_text())
    detections = pd.DataFrame(json.loads(SAMPLE_DET.read_text()))
    on_val = detections[detections.image_id.isin({im["id"] for im in gt_val["images"]})]
    assert len(det) == (on_val.score >= 0.5).sum()  # params.yaml: det_score_threshold 0.5
    assert (det.ann_id == -1).all() and (val.ann_id >= 0).all()  # val keeps GT boxes
    assert set(det.image_id) <= set(on_val.image_id) and len(gt_val["images"]) == 48
    assert cli(["prepare", *args, "--split", "val_det", "--set", "prepare.det_score_threshold=0.0"]) == 0
    assert len(pd.read_parquet(PREPARED / "instances_val_det.parquet")) == len(on_val)


def test_prepare_official_split_with_image_subdirs(tmp_path, monkeypatch):
    args = _setup(tmp_path, monkeypatch, SAMPLE, FIX_DET)
    split = ["--set", f"data.val_annotations={require(FIXTURE)}", "--set", "data.image_subdirs={train: t17, val: v17}",
             "--set", "prepare.det_score_threshold=0.0"]
    assert cli(["prepare", *args, *split]) == 0
    train = pd.read_parquet(PREPARED / "instances_train.parquet")
    val = pd.read_parquet(PREPARED / "instances_val_det.parquet")
    assert len(train) == 707 and train.file_name.str.startswith("t17/").all()  # every sample image trains
    assert len(val) == 118 and val.file_name.str.startswith("v17/").all()  # val's images, val's subdir
    assert len(json.loads((PREPARED / "annotations_val.json").read_text())["annotations"]) == 14


def test_a_val_det_job_reads_no_training_annotations(tmp_path, monkeypatch):
    """Official splits: the val_det job (Snakemake's prepare_detections) parses val's file only."""
    args = _setup(tmp_path, monkeypatch, SAMPLE, FIX_DET)
    split = ["--set", f"data.val_annotations={require(FIXTURE)}", "--set", "data.annotations=data/raw/absent.json",
             "--set", "prepare.det_score_threshold=0.0"]
    assert cli(["prepare", *args, *split, "--split", "val_det"]) == 0
    assert len(pd.read_parquet(PREPARED / "instances_val_det.parquet")) == 118
    assert cli(["prepare", *args, *split, "--split", "train"]) == 1  # the train job does need it


def test_an_empty_detection_split_names_the_thresholds(tmp_path, monkeypatch, capsys):
    args = _setup(tmp_path, monkeypatch, SAMPLE)
    assert cli(["prepare", *args, "--split", "val_det", "--set", "prepare.det_score_threshold=1.5"]) == 1
    assert "passes prepare.det_score_threshold 1.5 and min_box_area 0.0" in capsys.readouterr().err


def test_prepare_crowdpose_layout(tmp_path, monkeypatch):
    args = _setup(tmp_path, monkeypatch, CROWD, CROWD_DET)
    assert cli(["prepare", *args, "--set", "layout=crowdpose", "--set", f"data.val_annotations={CROWD}"]) == 0
    train = pd.read_parquet(PREPARED / "instances_train.parquet")
    assert len(train) == 4 and train.keypoints.map(len).eq(42).all()  # 5 persons, one without keypoints
    gt = json.loads((PREPARED / "annotations_val.json").read_text())
    assert all("crowdIndex" in im for im in gt["images"])
    assert pd.read_parquet(PREPARED / "instances_val_det.parquet").keypoints.map(len).eq(42).all()


def test_prepare_detections_needs_a_file(tmp_path, monkeypatch, capsys):
    args = _setup(tmp_path, monkeypatch, FIXTURE)
    assert cli(["prepare", *args, "--set", "prepare.detections=null"]) == 2  # sb_r18 evaluates val_det
    assert "val_det but datasets.sample.prepare.detections names no detection file" in capsys.readouterr().err
    assert cli(["prepare", "--params", "params.yaml", "--dataset", "crowdpose_sample", "--split", "val_det"]) == 1
    assert "crowdpose_sample.prepare.detections names no detection file" in capsys.readouterr().err


def test_prepare_not_coco_format(tmp_path, monkeypatch, capsys):
    args = _setup(tmp_path, monkeypatch, FIXTURE)
    Path("bad.json").write_text('{"images": []}')
    assert cli(["prepare", *args, "--set", "data.annotations=bad.json"]) == 1
    assert "bad.json: not a COCO annotation file" in capsys.readouterr().err
