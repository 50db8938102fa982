"""Damaged checkpoints, created for real: truncated or garbage backbone.pt, garbage refiner.pt, a
refiner.pt holding a list. Each is one line naming the file (exit 2), never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import FIXTURE_COCO
from sgpose.cli import main as cli
from test_cache_stage import tiny_project
from test_predict import save_models, tiny_params

IMAGE = FIXTURE_COCO / "000000040083.jpg"
BB = Path("results/fx/tiny")


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def garbage(path: Path) -> None:
    path.write_bytes(b"0123456789 not a checkpoint\n" * 40)


@pytest.mark.parametrize("damage", [truncate, garbage])
def test_a_damaged_backbone_is_an_error_naming_it(tmp_path, monkeypatch, capsys, damage):
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    assert cli(["train_backbone", "--params", str(params_file)]) == 0
    damage(BB / "backbone.pt")
    assert cli(["cache", "--params", str(params_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sgpose cache: error: {BB / 'backbone.pt'}: not a readable torch checkpoint (")
    assert "Traceback" not in err and not (BB / "cache").exists()


@pytest.mark.parametrize("damage, says", [
    (garbage, "not a readable torch checkpoint (UnpicklingError: "),
    (lambda p: torch.save([1, 2, 3], p), "not a refiner checkpoint (holds a list); rerun `sgpose train_refiner"),
    (lambda p: torch.save({"epoch": 3}, p), "not a refiner checkpoint (holds a dict without state_dict, "
                                            "features)"),
])
def test_a_damaged_refiner_is_an_error_naming_it(tmp_path, monkeypatch, capsys, damage, says):
    monkeypatch.chdir(tmp_path)
    tiny_params(tmp_path)
    save_models(tmp_path)
    damage(BB / "ours" / "refiner.pt")
    assert cli(["predict", str(IMAGE), "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sgpose predict: error: {BB / 'ours' / 'refiner.pt'}: {says}"), err
    assert not Path("out").exists()
