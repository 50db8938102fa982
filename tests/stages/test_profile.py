"""Profiles: each validates, `sample` is the shipped params.yaml, `sgpose profile NAME` activates one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sgpose.cli import main as cli
from sgpose.config import load_params

REPO = Path(__file__).resolve().parents[2]


def test_sample_profile_is_the_shipped_params():
    assert (REPO / "profiles/sample.yaml").read_bytes() == (REPO / "params.yaml").read_bytes()


@pytest.mark.parametrize("name", ["sample", "coco", "crowdpose"])
def test_profiles_validate(name):
    params = load_params(REPO / "profiles" / f"{name}.yaml")
    assert params.dataset == name
    if name != "sample":
        assert params.backbone.input_size == (256, 192) and params.backbone.deconv_channels == 256
        assert (params.train_refiner.epochs, params.train_refiner.batch_size) == (130, 48)
        assert params.train_backbone.epochs == 140 and params.data.val_annotations
        assert Path(REPO / params.data.manifest).is_file()


def test_coco_profile_uses_the_official_checkpoint_and_detections():
    params = load_params(REPO / "profiles/coco.yaml")
    assert params.backbone.checkpoint == "mmpose:res50_coco_256x192" and params.backbone.depth == 50
    assert params.prepare.detections.endswith("COCO_val2017_detections_AP_H_56_person.json")
    assert params.data.image_subdirs == {"train": "train2017", "val": "val2017"}
    assert load_params(REPO / "profiles/crowdpose.yaml").layout == "crowdpose"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_profile_command_activates(workdir):
    assert cli(["profile", "coco"]) == 0
    assert (workdir / "params.yaml").read_bytes() == (workdir / "profiles/coco.yaml").read_bytes()
    assert cli(["profile", "sample"]) == 0
    assert load_params("params.yaml").dataset == "sample"
    assert not list(workdir.glob("*.tmp-*"))


def test_bad_or_unknown_profile_leaves_params(workdir, capsys):
    before = (workdir / "params.yaml").read_bytes()
    (workdir / "profiles/broken.yaml").write_text("dataset: x\nbogus: 1\n")
    assert cli(["profile", "broken"]) == 1
    assert "profiles/broken.yaml: invalid parameters" in capsys.readouterr().err
    assert cli(["profile", "nope"]) == 1
    assert "profiles/nope.yaml: no such profile; available: broken, coco, crowdpose, sample" in capsys.readouterr().err
    assert (workdir / "params.yaml").read_bytes() == before
