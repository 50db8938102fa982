"""Damaged checkpoints, created for real: truncated or garbage backbone.pt, garbage refiner.pt, a
refiner.pt holding a list, a refiner.pt whose weights are NaN (a diverged training). Each is one line
naming the file (exit 2), never a traceback."""

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


def diverged(path: Path) -> None:
    """A refiner.pt a diverged training wrote before sgpose refused to write one: every weight NaN."""
    ckpt = torch.load(path, weights_only=False)
    ckpt["state_dict"] = {k: torch.full_like(v, float("nan")) for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, path)


@pytest.mark.parametrize("damage, says", [
    (garbage, "not a readable torch checkpoint (not a torch file: neither torch's zip format nor a pickle; its "
              "first bytes "),
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


def test_a_refiner_a_diverged_training_wrote_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_params(tmp_path)
    save_models(tmp_path)
    diverged(BB / "ours" / "refiner.pt")
    n = sum(v.numel() for v in torch.load(BB / "ours" / "refiner.pt", weights_only=False)["state_dict"].values())
    assert cli(["predict", str(IMAGE), "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sgpose predict: error: {BB / 'ours' / 'refiner.pt'}: {n} of {n} values not finite (NaN "
                          "or inf), first in "), err
    assert err.rstrip().endswith(": written by a diverged training; delete it and retrain (a lower lr, or gradient "
                                 "clipping)") and not Path("out").exists()
