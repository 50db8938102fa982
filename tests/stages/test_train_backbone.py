"""`sgpose train_backbone` on a tiny config over the COCO fixture: outputs, log, resume."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sgpose.stages.train_backbone as stage
import torch
import yaml
from conftest import FIXTURE_COCO as FIXTURE
from conftest import fixture_instances
from sgpose.cli import main as cli


def tiny_project(root: Path, epochs: int = 1) -> Path:
    """params.yaml (R18, 16 deconv channels, 64x64 crops (multiples of 32)) and train/val instance tables under root."""
    params = {
        "dataset": "fx", "layout": "coco",
        "data": {"manifest": "m.tsv", "raw_dir": "raw", "images_dir": str(FIXTURE),
                 "annotations": str(FIXTURE / "test_coco.json")},
        "backbone": {"name": "tiny", "depth": 18, "deconv_channels": 16, "input_size": [64, 64],
                     "heatmap_size": [16, 16]},
        "train_backbone": {"epochs": epochs, "batch_size": 4, "lr": 1e-3, "lr_steps": [1]},
        "cache": {"batch_size": 4},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    table = fixture_instances((64, 64))
    out = root / "results" / "fx"
    out.mkdir(parents=True)
    table.iloc[:6].to_parquet(out / "instances_train.parquet")
    table.iloc[6:].to_parquet(out / "instances_val.parquet")
    return root / "params.yaml"


def test_trains_and_writes_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(["train_backbone", "--params", str(tiny_project(tmp_path))]) == 0
    bb = tmp_path / "results" / "fx" / "tiny"
    ckpt = torch.load(bb / "backbone.pt", weights_only=True)
    assert set(ckpt) == {"state_dict", "backbone", "num_joints", "epochs"}
    assert ckpt["num_joints"] == 17 and ckpt["epochs"] == 1 and ckpt["backbone"]["depth"] == 18
    assert "final_layer.weight" in ckpt["state_dict"]
    logdf = pd.read_csv(bb / "train_log.csv")
    assert list(logdf.columns) == ["epoch", "loss", "lr", "seconds"] and list(logdf.epoch) == [1]
    assert np.isfinite(logdf.loss).all() and logdf.lr[0] == pytest.approx(1e-3)
    assert not (bb / "backbone.pt.last").exists()
    assert sorted(p.name for p in bb.iterdir()) == ["backbone.pt", "train_log.csv"]  # no temporaries


def test_rerun_resumes_from_last(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path, epochs=2))
    real, calls = stage.train_one_epoch, []

    def dies_in_second_epoch(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(stage, "train_one_epoch", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        cli(["train_backbone", "--params", params])
    bb = tmp_path / "results" / "fx" / "tiny"
    assert (bb / "backbone.pt.last").exists() and not (bb / "backbone.pt").exists()
    assert torch.load(bb / "backbone.pt.last", weights_only=True)["epoch"] == 1

    calls.clear()
    monkeypatch.setattr(stage, "train_one_epoch", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    assert cli(["train_backbone", "--params", params]) == 0
    assert len(calls) == 1  # only epoch 2 ran
    logdf = pd.read_csv(bb / "train_log.csv")
    assert list(logdf.epoch) == [1, 2]
    assert logdf.lr.tolist() == pytest.approx([1e-3, 1e-4])  # scheduler state resumed
    assert not (bb / "backbone.pt.last").exists()


def test_incompatible_last_is_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path))
    bb = tmp_path / "results" / "fx" / "tiny"
    bb.mkdir(parents=True)
    (bb / "backbone.pt.last").write_bytes(b"garbage")
    assert cli(["train_backbone", "--params", params]) == 0
    assert list(pd.read_csv(bb / "train_log.csv").epoch) == [1]


def test_official_checkpoint_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path))
    assert cli(["train_backbone", "--params", params, "--set", "backbone.checkpoint=x.pth"]) == 1
    assert "loaded by the cache stage" in capsys.readouterr().err
