"""`sgpose train_backbone` on a tiny config over the COCO fixture: outputs, log, resume."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sgpose.training.backbone as stage
import torch
from conftest import fixture_instances, params_tree, write_instances, write_params
from sgpose.cli import main as cli
from sgpose.config.schema import BackboneParams
from sgpose.config.selection import load_params
from sgpose.models.backbones import build_backbone


def tiny_project(root: Path, epochs: int = 1) -> Path:
    """params.yaml (R18, 16 deconv channels, 64x64 crops (multiples of 32)) and train/val instance tables under root."""
    params = write_params(root, params_tree(
        train_backbone={"epochs": epochs, "batch_size": 4, "lr": 1e-3, "lr_steps": [1]}, cache={"batch_size": 4}))
    table = fixture_instances((64, 64))
    write_instances(root, "fx", train=table.iloc[:6], val=table.iloc[6:])
    return params


def test_trains_and_writes_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(["train_backbone", "--params", str(tiny_project(tmp_path))]) == 0
    bb = tmp_path / "results" / "fx" / "tiny"
    ckpt = torch.load(bb / "backbone.pt", weights_only=True)
    assert set(ckpt) == {"state_dict", "backbone", "num_joints", "epochs", "source", "source_sha256"}
    assert ckpt["source"] is None and ckpt["epochs"] == 1
    assert ckpt["num_joints"] == 17 and ckpt["epochs"] == 1 and ckpt["backbone"]["depth"] == 18
    assert "final_layer.weight" in ckpt["state_dict"]
    logdf = pd.read_csv(bb / "train_log.csv")
    assert list(logdf.columns) == ["epoch", "loss", "lr"] and list(logdf.epoch) == [1]
    assert np.isfinite(logdf.loss).all() and logdf.lr[0] == pytest.approx(1e-3)
    assert not (bb / "backbone.pt.last").exists()
    assert sorted(p.name for p in bb.iterdir()) == ["backbone.pt", "train_log.csv"]  # no temporaries


def test_rerun_resumes_from_last(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path, epochs=2))
    bb = tmp_path / "results" / "fx" / "tiny"
    _interrupted_after_epoch_one(params, monkeypatch)  # backbone.pt.last at epoch 1, no backbone.pt
    assert not (bb / "backbone.pt").exists()
    real, calls = stage.train_one_epoch, []
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


def test_official_checkpoint_is_imported_not_trained(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path))
    assert cli(["train_backbone", "--params", params, "--set", "backbone.checkpoint=x.pth"]) == 1
    assert "x.pth" in capsys.readouterr().err
    bp = load_params(params).backbone
    official = tmp_path / "official.pth"
    state = build_backbone(bp, 17).state_dict()
    torch.save({"module." + k: v for k, v in state.items()}, official)  # DataParallel naming
    assert cli(["train_backbone", "--params", params, "--set", f"backbone.checkpoint={official}"]) == 0
    saved = torch.load(tmp_path / "results" / "fx" / "tiny" / "backbone.pt", weights_only=True)
    assert saved["epochs"] == 0 and saved["source_sha256"] == hashlib.sha256(official.read_bytes()).hexdigest()
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in state.items())


def test_trains_hrnet(tmp_path, monkeypatch):
    """HRNet-W32 through the same loop: 1 epoch over 6 fixture crops at 64x64; outputs load back strictly."""
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path))
    hr = ["--set", "backbone.arch=hrnet", "--set", "backbone.width=32"]
    assert cli(["train_backbone", "--params", params, *hr]) == 0
    bb = tmp_path / "results" / "fx" / "tiny"
    ckpt = torch.load(bb / "backbone.pt", weights_only=True)
    assert ckpt["backbone"]["arch"] == "hrnet" and ckpt["backbone"]["width"] == 32
    assert ckpt["state_dict"]["final_layer.weight"].shape == (17, 32, 1, 1)
    assert "stage4.2.fuse_layers.0.3.0.weight" in ckpt["state_dict"]
    assert np.isfinite(pd.read_csv(bb / "train_log.csv").loss).all()
    assert cli(["cache", "--params", params, *hr]) == 0
    from sgpose.cache.reader import load_cache

    val = load_cache(bb / "cache" / "val.h5", ["heatmaps", "feat/3", "flip/feat/0"])
    assert val["heatmaps"].shape[1:] == (17, 16, 16) and val["feat/3"].shape[1:] == (256, 2, 2)
    assert val["flip/feat/0"].shape[1:] == (32, 16, 16)


def _interrupted_after_epoch_one(params: str, monkeypatch) -> Path:
    """Run a 2-epoch train_backbone that dies in epoch 2: backbone.pt.last holds epoch 1."""
    real, calls = stage.train_one_epoch, []

    def dies_in_second_epoch(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(stage, "train_one_epoch", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        cli(["train_backbone", "--params", params])
    monkeypatch.setattr(stage, "train_one_epoch", real)
    last = Path("results/fx/tiny/backbone.pt.last")
    assert torch.load(last, weights_only=True)["epoch"] == 1
    return last


@pytest.mark.parametrize("change", ["fewer persons", "other images"])
def test_other_training_data_never_resumes(tmp_path, monkeypatch, caplog, change):
    """Issue 16: killed, the training data changed (persons dropped, or a new download stamp: other
    image files), re-run: it starts clean instead of continuing the old data's weights."""
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path, epochs=2))
    _interrupted_after_epoch_one(params, monkeypatch)
    if change == "fewer persons":
        write_instances(tmp_path, "fx", train=fixture_instances((64, 64)).iloc[:4])
    else:
        (tmp_path / "results" / "fx" / "download.json").write_text('{"files": {"a.jpg": "0123"}}\n')
    caplog.set_level("INFO")
    assert cli(["train_backbone", "--params", params]) == 0
    assert "made with other parameters or data; starting clean" in caplog.text
    assert "resuming" not in caplog.text
    assert list(pd.read_csv("results/fx/tiny/train_log.csv").epoch) == [1, 2]
    # the clean run equals a fresh run on the new data, byte for byte
    fresh = tmp_path / "fresh"
    shutil.copytree(tmp_path / "results", fresh / "results", ignore=shutil.ignore_patterns("tiny"))
    shutil.copy(params, fresh / "params.yaml")
    monkeypatch.chdir(fresh)
    assert cli(["train_backbone", "--params", "params.yaml"]) == 0
    assert (fresh / "results/fx/tiny/backbone.pt").read_bytes() == (tmp_path / "results/fx/tiny/backbone.pt").read_bytes()


def test_same_data_still_resumes(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path, epochs=2))
    (tmp_path / "results" / "fx" / "download.json").write_text('{"files": {"a.jpg": "0123"}}\n')
    _interrupted_after_epoch_one(params, monkeypatch)
    write_instances(tmp_path, "fx", train=fixture_instances((64, 64)).iloc[:6])  # rewritten, same rows
    caplog.set_level("INFO")
    assert cli(["train_backbone", "--params", params]) == 0
    assert "resuming from results/fx/tiny/backbone.pt.last (epoch 1)" in caplog.text


def _batches(n: int = 3, size: tuple[int, int] = (64, 64)) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    h, w = size[0] // 4, size[1] // 4
    return [{"image": torch.randn(4, 3, *size, generator=gen), "target": torch.rand(4, 17, h, w, generator=gen),
             "target_weight": (torch.rand(4, 17, generator=gen) > 0.2).float()} for _ in range(n)]


def test_an_epoch_on_the_cpu_is_the_plain_fp32_loop_to_the_bit():
    """train_one_epoch under `compute` (autocast and channels_last off on the CPU, the loss summed on the
    device) gives the weights and logged loss of the plain loop that adds each loss.item()."""
    params = BackboneParams(name="r18", depth=18, deconv_channels=16, input_size=(64, 64), heatmap_size=(16, 16))
    batches, cpu = _batches(), torch.device("cpu")
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_backbone(params, 17))
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    loss = stage.train_one_epoch(models[0], batches, opts[0], cpu, "test")
    models[1].train()
    total = 0.0
    for b in batches:
        out = stage.joints_mse(models[1](b["image"])[0], b["target"], b["target_weight"])
        opts[1].zero_grad(set_to_none=True)
        out.backward()
        opts[1].step()
        total += out.item() * len(b["image"])
    assert loss == total / 12
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.equal(a, b), name
