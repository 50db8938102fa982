"""`sgpose train_backbone` on a tiny config over the COCO fixture: outputs, log, resume (after an epoch,
and inside one after SIGTERM, to the same bytes), out of host memory under a real address-space limit."""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sgpose.training.backbone as stage
import torch
from conftest import fixture_instances, params_tree, write_instances, write_params
from sgpose.cli import main as cli
from sgpose.config.schema import BackboneParams, TrainBackboneParams
from sgpose.config.selection import load_params
from sgpose.core.errors import Preempted
from sgpose.models.backbones import build_backbone
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[2]


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
    assert set(ckpt) == {"state_dict", "backbone", "num_joints", "epochs", "source", "source_sha256", "compute"}
    assert ckpt["compute"]["device"] == "cpu" and ckpt["compute"]["cpu_numerics"].startswith("portable (")
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


class Indices(Dataset):
    def __len__(self) -> int:
        return 13

    def __getitem__(self, i: int) -> int:
        return i


@pytest.mark.parametrize("workers", [0, 1])
def test_an_epochs_batches_are_the_shuffled_loaders_and_a_skip_drops_the_first(workers):
    """epoch_loader's order is DataLoader(shuffle=True)'s with the epoch's generator (which draws the
    workers' base seed from it first), so a resumed epoch skipping k batches reads exactly the rest."""
    tp = TrainBackboneParams(batch_size=4, num_workers=workers, seed=5)
    for epoch in (0, 3):
        shuffled = DataLoader(Indices(), batch_size=4, shuffle=True, num_workers=workers,
                              generator=torch.Generator().manual_seed(tp.seed * 1000 + epoch))
        want = [b.tolist() for b in shuffled]
        assert [b.tolist() for b in stage.epoch_loader(Indices(), tp, epoch, torch.device("cpu"))] == want
        assert [b.tolist() for b in stage.epoch_loader(Indices(), tp, epoch, torch.device("cpu"), skip=2)] == want[2:]


def test_sigterm_inside_an_epoch_saves_that_step_and_resumes_to_the_same_bytes(tmp_path, monkeypatch, capsys):
    """6 crops in batches of 2: 3 steps per epoch; SIGTERM in step 2 of epoch 2 (as SLURM sends it at a time
    limit): exit 143, the resume point holds the step and the partial loss sum; the rerun reads only the
    epoch's third batch and ends with the bytes of a run never stopped."""
    monkeypatch.chdir(tmp_path)
    params = str(tiny_project(tmp_path, epochs=2))
    args = ["train_backbone", "--params", params, "--set", "train_backbone.batch_size=2"]
    bb = tmp_path / "results" / "fx" / "tiny"
    assert cli(args) == 0
    want = [(bb / f).read_bytes() for f in ("backbone.pt", "train_log.csv")]
    for f in ("backbone.pt", "train_log.csv"):
        (bb / f).unlink()
    real, calls = stage.joints_mse, []

    def signalled(*a, **kw):
        calls.append(1)
        if len(calls) == 5:  # epoch 2, step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setattr(stage, "joints_mse", signalled)
    assert cli(args) == Preempted.STATUS
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "sgpose train_backbone: stopped by SIGTERM at step 2/3 of epoch 2; resume point results/fx/tiny/backbone.pt.last "
        "saved: a rerun continues from there (exit 143)")
    state = torch.load(bb / "backbone.pt.last", weights_only=True)
    assert (state["epoch"], state["step"], state["count"]) == (1, 2, 4) and state["total"] > 0
    monkeypatch.setattr(stage, "joints_mse", real)
    calls.clear()
    monkeypatch.setattr(stage, "joints_mse", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    assert cli(args) == 0
    assert len(calls) == 1  # only the epoch's last batch
    assert [(bb / f).read_bytes() for f in ("backbone.pt", "train_log.csv")] == want


def _vm_peak(code: str, env: dict) -> int:
    """Peak virtual memory (bytes) of a Python process that runs `code` (imports, here)."""
    probe = f"{code}\nprint([l for l in open('/proc/self/status') if l.startswith('VmPeak')][0].split()[1])"
    return int(subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                              check=True).stdout) * 1024


def test_out_of_host_memory_is_one_line_naming_the_batch_size(tmp_path):
    """A real limit (prlimit --as: the stage's imports' peak + 1.5 GiB): 64x64 crops train under it; 1024x1024
    crops (4.4 GiB resident unlimited) run out in the first forward pass, reported as one line with the
    refused allocation, the peak and the limit, and the batch size parameter to lower (exit 2)."""
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) not found")
    params = str(tiny_project(tmp_path, epochs=1))
    env = {**os.environ, "PYTHONPATH": str(REPO / "pipeline_src"), "MALLOC_ARENA_MAX": "2"}  # few malloc arenas
    limit = _vm_peak("import torch, cv2, sgpose.stages.train_backbone", env) + (3 << 29)

    def train(size: int) -> subprocess.CompletedProcess:
        crop = ["--set", f"backbone.input_size=[{size},{size}]", "--set", f"backbone.heatmap_size=[{size // 4},{size // 4}]"]
        return subprocess.run(["prlimit", f"--as={limit}", sys.executable, "-m", "sgpose.cli", "train_backbone", "--params",
                               params, "--set", "train_backbone.batch_size=6", *crop], cwd=tmp_path, env=env,
                              capture_output=True, text=True)

    assert train(64).returncode == 0
    trained = (tmp_path / "results/fx/tiny/backbone.pt").read_bytes()
    done = train(1024)
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    print("\n" + "\n".join(errors))
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.fullmatch(rf"sgpose train_backbone: error: out of host memory \(an allocation of \d+\.\d\d GiB refused, "
                        rf"peak resident memory \d+\.\d\d GiB, peak virtual memory \d+\.\d\d GiB, address-space limit "
                        rf"{limit / (1 << 30):.2f} GiB \(ulimit -v, prlimit --as\)\); lower train_backbone\.batch_size "
                        rf"\(now 6\)", errors[0]), errors[0]
    assert (tmp_path / "results/fx/tiny/backbone.pt").read_bytes() == trained  # the 64x64 run's, untouched
    assert not (tmp_path / "results/fx/tiny/backbone.pt.last").exists()
