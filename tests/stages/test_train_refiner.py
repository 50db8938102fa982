"""`sgpose train_refiner` on a tiny cache of the COCO fixture: outputs, exact resume (after an epoch, and
inside one after SIGTERM), DDP (two gloo processes under torchrun) against one process, the online feature
source against the cache, a divergent run (stopped with one line, nothing written), gradient clipping."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sgpose.training.refiner as stage
import torch
from sgpose.cache.reader import features
from sgpose.cli import main as cli
from sgpose.config.paths import Paths
from sgpose.config.selection import load_params
from sgpose.core.errors import Preempted
from sgpose.runtime import compute
from sgpose.training import sources
from test_cache_stage import tiny_project

SMALL = ["--set", "refiner.base_channels=8", "--set", "refiner.time_dim=16", "--set", "train_refiner.batch_size=4"]
BB = Path("results/fx/tiny")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A params file, a (0-epoch) backbone and its cache: 7 training crops, 5 val crops."""
    monkeypatch.chdir(tmp_path)
    params_file, _ = tiny_project(tmp_path)
    assert cli(["train_backbone", "--params", str(params_file)]) == 0
    assert cli(["cache", "--params", str(params_file), "--set", "cache.batch_size=1"]) == 0
    return ["--params", str(params_file), *SMALL]


def _weights(variant: str = "ours") -> dict[str, torch.Tensor]:
    return torch.load(BB / variant / "refiner.pt", weights_only=False)["state_dict"]


def _assert_weights_close(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


def test_trains_writes_checkpoint_and_log(project):
    assert cli(["train_refiner", *project, "--set", "train_refiner.epochs=2", "--variant", "ours_S4"]) == 0
    ckpt = torch.load(BB / "ours_S4" / "refiner.pt", weights_only=False)
    assert ckpt["variant"] == "ours_S4" and ckpt["epoch"] == 2 and [f["level"] for f in ckpt["features"]] == [0, 1, 2]
    assert [f["channels"] for f in ckpt["features"]] == [16, 16, 16] and "optimizer" not in ckpt
    log = pd.read_csv(BB / "ours_S4" / "train_log.csv")
    assert list(log.epoch) == [1, 2] and (log.loss > 0).all()
    assert sorted(p.name for p in (BB / "ours_S4").iterdir()) == ["refiner.pt", "train_log.csv"]
    with pytest.raises(SystemExit):
        cli(["train_refiner", *project, "--variant", "baseline"])  # argparse: baseline has no refiner


def test_a_seed_of_a_variant_trains_under_its_own_seed(project):
    """Issue 38: `ours_seed1` is ours trained under train_refiner.seed + 1: other weights than ours, the same as
    ours trained with the seed set to 1 (only the checkpoint's variant name differs)."""
    assert cli(["train_refiner", *project, "--variant", "ours"]) == 0
    ours = _weights()
    assert cli(["train_refiner", *project, "--variant", "ours_seed1"]) == 0
    seeded = torch.load(BB / "ours_seed1" / "refiner.pt", weights_only=False)
    assert seeded["variant"] == "ours_seed1"
    assert any(not torch.equal(ours[k], seeded["state_dict"][k]) for k in ours)
    assert cli(["train_refiner", *project, "--variant", "ours", "--set", "train_refiner.seed=1"]) == 0
    _assert_weights_close(_weights(), seeded["state_dict"])


def _interrupt_in_epoch_two(args: list[str], monkeypatch) -> None:
    """Run train_refiner with `args` and kill it in its second epoch: refiner.pt.last is left."""
    real, calls = stage.training_loss, []

    def dies_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # 2 batches per epoch: the first batch of epoch 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "training_loss", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        cli(["train_refiner", *args])
    assert (BB / "ours" / "refiner.pt.last").is_file() and not (BB / "ours" / "refiner.pt").exists()
    monkeypatch.setattr(stage, "training_loss", real)


def test_an_interrupted_run_resumes_to_the_same_weights(project, monkeypatch):
    # the lr drops x0.1 at the third epoch, after the resume: the resumed run sets the schedule's lr
    three = [*project, "--set", "train_refiner.epochs=3", "--set", "train_refiner.lr_steps=[2]"]
    assert cli(["train_refiner", *three]) == 0
    want, want_bytes = _weights(), (BB / "ours" / "refiner.pt").read_bytes()
    (BB / "ours" / "refiner.pt").unlink()
    _interrupt_in_epoch_two(three, monkeypatch)
    assert cli(["train_refiner", *three]) == 0
    assert list(pd.read_csv(BB / "ours" / "train_log.csv").epoch) == [1, 2, 3]
    _assert_weights_close(_weights(), want)  # model, optimizer and generator state all resumed
    assert (BB / "ours" / "refiner.pt").read_bytes() == want_bytes  # and the file too: DVC sees no change


def test_lr_steps_divide_the_lr_by_ten_from_each_step_on(project):
    """`train_refiner.lr_steps` (the sample's schedule; the paper's lr is constant): x0.1 at each listed
    epoch, logged per epoch, and the weights differ from a constant lr's."""
    three = [*project, "--set", "train_refiner.epochs=3", "--set", "train_refiner.lr=1e-3"]
    assert cli(["train_refiner", *three]) == 0
    constant = _weights()
    assert list(pd.read_csv(BB / "ours" / "train_log.csv").lr) == [1e-3] * 3
    assert cli(["train_refiner", *three, "--set", "train_refiner.lr_steps=[1,2]"]) == 0
    assert pd.read_csv(BB / "ours" / "train_log.csv").lr.tolist() == pytest.approx([1e-3, 1e-4, 1e-5], rel=1e-12)
    stepped = _weights()
    assert any(not torch.equal(constant[k], stepped[k]) for k in constant)


def test_a_run_with_other_parameters_starts_clean(project, monkeypatch, caplog):
    """An interrupted run's refiner.pt.last is not continued under other parameters (here the lr and
    the guidance threshold): the re-run equals a fresh run with the new ones."""
    three = [*project, "--set", "train_refiner.epochs=3"]
    other = [*three, "--set", "train_refiner.lr=3e-4", "--set", "guidance.pred_threshold=0.3"]
    assert cli(["train_refiner", *other]) == 0
    want = _weights()
    (BB / "ours" / "refiner.pt").unlink()
    _interrupt_in_epoch_two(three, monkeypatch)
    assert cli(["train_refiner", *other]) == 0
    assert "made with other parameters or data; starting clean" in caplog.text
    _assert_weights_close(_weights(), want)


def test_two_ddp_processes_train_the_same_weights_as_one(project):
    """torchrun, gloo on the CPU: each process takes every other sample of each global batch and the
    loss is weighted by its share, so the averaged gradient is the single-process one."""
    two = [*project, "--set", "train_refiner.epochs=2"]
    assert cli(["train_refiner", *two]) == 0
    one, one_log = _weights(), pd.read_csv(BB / "ours" / "train_log.csv")
    assert cli(["train_refiner", *two, "--set", "train_refiner.seed=1"]) == 0
    other_seed = _weights()
    assert cli(["train_refiner", *two, "--set", "train_refiner.devices=2"]) == 0
    ddp, log = _weights(), pd.read_csv(BB / "ours" / "train_log.csv")
    assert list(log.epoch) == [1, 2] and not (BB / "ours" / "refiner.pt.last").exists()
    assert log.loss.tolist() == pytest.approx(one_log.loss.tolist(), rel=1e-4)  # the same batches, steps, loss
    # Adam normalises every gradient: a parameter whose gradient is ~0 (a bias before GroupNorm) moves
    # by up to ~lr per step on the reduce's rounding alone; 4 steps at lr 1e-4 bound the difference
    _assert_weights_close(ddp, one, atol=4 * 4 * 1e-4)
    assert max((one[k] - other_seed[k]).abs().max().item() for k in one) > 0.1  # what a real difference is


def test_online_features_are_the_cached_ones_without_augmentation(project):
    """features: online runs the frozen backbone on the crops; with augmentation off its batch equals
    the cache's (fp16 storage aside), and a refiner trains without the training cache."""
    no_aug = ["--set", "cache.augment={flip_prob: 0.0, scale_factor: 0.0, rotation_factor: 0.0}"]
    params = load_params(project[1], [a for a in [*project[2:], *no_aug] if a != "--set"])
    paths, dev = Paths(params), torch.device("cpu")
    stored = next(iter(sources.CachedSource(paths.cache("train"), params.train_refiner, dev).batches([[0, 2, 5]], 0)))
    assert stored["feat/0"].dtype == stored["target"].dtype == torch.float16  # half the bytes from the readers
    cached = {k: compute.to_device(v, params.compute, dev) for k, v in stored.items()}  # as the training loop sees it
    assert cached["feat/0"].dtype == torch.float32
    online_source = sources.OnlineSource(params, paths, dev)
    online = next(iter(online_source.batches([[0, 2, 5]], 0)))
    assert [(f.level, f.channels) for f in online_source.features] == [(0, 16), (1, 16), (2, 16)]
    for key in ("heatmaps", "target", "target_weight", "joints"):
        torch.testing.assert_close(online[key].float(), cached[key], atol=2e-3, rtol=1e-2, msg=key)
    for a, b in zip(features(online), features(cached)):
        torch.testing.assert_close(a, b, atol=2e-2, rtol=1e-2)
    for p in (BB / "cache").glob("train*"):
        p.unlink() if p.is_file() else [q.unlink() for q in p.iterdir()]
    assert cli(["train_refiner", *project, "--set", "train_refiner.epochs=1", "--set",
                "train_refiner.features=online"]) == 0
    assert _weights()["head.2.weight"].shape[0] == 17


def test_cached_training_views_are_drawn_per_epoch(project):
    assert cli(["cache", "--params", project[1], "--set", "cache.train_views=2", "--set", "cache.batch_size=1"]) == 0
    params = load_params(project[1], [a for a in project[2:] if a != "--set"])
    source = sources.CachedSource(Paths(params).cache("train"), params.train_refiner, torch.device("cpu"))
    assert (source.views, source.num_instances, len(source.data)) == (2, 7, 14)
    assert source.data.memory is not None  # a small cache: read into memory once
    assert cli(["train_refiner", *project, "--set", "train_refiner.epochs=1"]) == 0


def test_equal_work_gives_equal_bytes(project):
    """Issue 16: refiner.pt and train_log.csv hold no wall times, so a second identical training
    reproduces both byte for byte (DVC then sees no change downstream)."""
    files = [BB / "ours" / "refiner.pt", BB / "ours" / "train_log.csv"]
    assert cli(["train_refiner", *project, "--set", "train_refiner.epochs=2"]) == 0
    first = [f.read_bytes() for f in files]
    for f in files:
        f.unlink()
    assert cli(["train_refiner", *project, "--set", "train_refiner.epochs=2"]) == 0
    assert [f.read_bytes() for f in files] == first
    assert list(pd.read_csv(files[1]).columns) == ["epoch", "loss", "lr", "val_ap"]
    assert all(set(row) == {"epoch", "loss", "lr", "val_ap"} for row in torch.load(files[0], weights_only=False)["log"])


def test_a_divergent_run_stops_with_one_line_and_writes_nothing(project, capsys):
    """Issue 27: lr 1e6 made every epoch's loss NaN, and the stage exit 0 with an all-NaN refiner.pt. Now
    the first non-finite loss stops it, naming the epoch and step, the last finite loss and what to try;
    no refiner.pt, no train_log.csv; the resume point of the last finite epoch is kept (a lower lr
    starts clean: other parameters)."""
    assert cli(["train_refiner", *project, "--set", "train_refiner.epochs=4", "--set", "train_refiner.lr=1e6"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    line = err[-1]
    print("\n" + line)
    assert re.fullmatch(
        r"sgpose train_refiner: error: refiner ours: training diverged at epoch (\d), step (\d)/2: (the loss|the gradient "
        r"norm|a weight \(max \|w\|\)) is (nan|inf|-inf); the last finite loss was \S+ \(epoch \d, step \d\)\. Nothing "
        r"written; the resume point results/fx/tiny/ours/refiner\.pt\.last \(epoch (\d)\) is kept\. Try a lower "
        r"train_refiner\.lr \(now 1e\+06\) or gradient clipping, train_refiner\.grad_clip_norm \(off now\)\.", line), line
    epoch, kept = int(re.search(r"diverged at epoch (\d)", line).group(1)), int(re.search(r"\(epoch (\d)\) is kept", line).group(1))
    assert 2 <= epoch <= 4 and kept == epoch - 1 and not any("Traceback" in e for e in err)
    assert sorted(p.name for p in (BB / "ours").iterdir()) == ["refiner.pt.last"]
    state = torch.load(BB / "ours" / "refiner.pt.last", weights_only=False)
    assert state["epoch"] == kept and all(torch.isfinite(v).all() for v in state["state_dict"].values())


def _sigterm_at_call(n: int, monkeypatch) -> None:
    """SIGTERM, as SLURM sends it at a time limit, to this process and its data loader workers (SLURM
    signals every process of the job) during the n-th training step."""
    real, calls = stage.training_loss, []

    def signalled(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            for child in multiprocessing.active_children():  # the reader processes
                os.kill(child.pid, signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "training_loss", signalled)


@pytest.mark.parametrize("workers", [0, 1])
def test_sigterm_inside_an_epoch_saves_that_step_and_resumes_to_the_same_bytes(project, monkeypatch, capsys, caplog,
                                                                              workers):
    """4 steps per epoch (7 samples, batch 2); SIGTERM in step 2 of epoch 2: the step ends, the resume point
    holds it, the stage exits 143; the rerun redraws epoch 2's batches, skips the two done and ends with
    the bytes of a run never stopped (with a reader process too: it ignores SIGTERM)."""
    real = stage.training_loss
    caplog.set_level(logging.INFO)
    args = [*project, "--set", "train_refiner.epochs=3", "--set", "train_refiner.batch_size=2", "--set",
            f"train_refiner.num_workers={workers}"]
    assert cli(["train_refiner", *args]) == 0
    files = [BB / "ours" / "refiner.pt", BB / "ours" / "train_log.csv"]
    want = [f.read_bytes() for f in files]
    for f in files:
        f.unlink()
    _sigterm_at_call(6, monkeypatch)
    assert cli(["train_refiner", *args]) == Preempted.STATUS
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == ("sgpose train_refiner: stopped by SIGTERM at step 2/4 of epoch 2; resume point "
                    "results/fx/tiny/ours/refiner.pt.last saved: a rerun continues from there (exit 143)")
    state = torch.load(BB / "ours" / "refiner.pt.last", weights_only=False)
    assert (state["epoch"], state["step"], len(state["log"])) == (1, 2, 1) and not files[0].exists()
    monkeypatch.setattr(stage, "training_loss", real)
    assert cli(["train_refiner", *args]) == 0
    assert "resuming from results/fx/tiny/ours/refiner.pt.last (step 2 of epoch 2)" in caplog.text
    assert [f.read_bytes() for f in files] == want and not (BB / "ours" / "refiner.pt.last").exists()


def test_gradient_clipping_changes_the_weights_and_the_fingerprint(project):
    assert cli(["train_refiner", *project, "--set", "train_refiner.epochs=1"]) == 0
    plain = _weights()
    clipped = [*project, "--set", "train_refiner.epochs=1", "--set", "train_refiner.grad_clip_norm=1e-6"]
    assert cli(["train_refiner", *clipped]) == 0
    moved = max((plain[k] - _weights()[k]).abs().max().item() for k in plain)
    assert moved > 1e-6  # Adam normalises the step: a clipped gradient still moves, but not as the plain one
    params = load_params(project[1], [a for a in clipped[2:] if a != "--set"])
    source = sources.CachedSource(Paths(params).cache("train"), params.train_refiner, torch.device("cpu"))
    assert stage.fingerprint(params, "ours", source)["train"]["grad_clip_norm"] == 1e-6


def test_two_ddp_processes_stopped_by_sigterm_agree_on_the_step_and_resume_to_the_same_bytes(project):
    """SIGTERM to every process of the run, as SLURM sends it (the stage, torchrun and its two workers), once
    epoch 1 is saved: the workers agree on a step (an all-reduce of the flag), process 0 saves the point with
    both processes' partial loss sums, every process exits, the stage 143; the rerun ends with the bytes of
    an uninterrupted two-process run."""
    two = [*project, "--set", "train_refiner.epochs=3", "--set", "train_refiner.devices=2", "--set",
           "train_refiner.batch_size=2"]
    files = [BB / "ours" / "refiner.pt", BB / "ours" / "train_log.csv"]
    assert cli(["train_refiner", *two]) == 0
    want = [f.read_bytes() for f in files]
    for f in files:
        f.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "sgpose.cli", "train_refiner", *two], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = BB / "ours" / "refiner.pt.last"
    while not last.is_file() and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == Preempted.STATUS, out[-4000:]
    stopped = re.findall(r"sgpose train_refiner: stopped by SIGTERM at step (\d+)/3 of epoch (\d+)", out)  # 7 samples: 2+2+2
    assert len(set(stopped)) == 1 and len(stopped) >= 2, out[-4000:]  # both workers, the same step
    state = torch.load(last, weights_only=False)
    step, epoch = map(int, stopped[0])
    assert (state["epoch"], state["step"], len(state["totals"])) == (epoch - 1, step, 2)
    assert cli(["train_refiner", *two]) == 0
    assert [f.read_bytes() for f in files] == want and not last.exists()
