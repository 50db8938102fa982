"""`threads`: one thread count per stage, from --threads, SLURM_CPUS_PER_TASK, its rule's resources, or the cores."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import params_tree, write_params
from sgpose.runtime import threads

ROOT = Path(__file__).resolve().parents[2]


def test_the_option_wins_over_slurm_and_params(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert threads.resolve_threads(2, "cache", 3) == (2, "--threads")


def test_slurm_wins_over_params(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert threads.resolve_threads(None, "cache", 3) == (5, "SLURM_CPUS_PER_TASK")


def test_params_resources_then_every_core(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert threads.resolve_threads(None, "cache", 1) == (1, "resources.cache.threads")
    cores = len(os.sched_getaffinity(0))  # a rule's default is a GPU node's: capped at this machine's cores
    assert threads.resolve_threads(None, "cache", 10_000) == (cores, f"resources.cache.threads 10000, capped at "
                                                                      f"this machine's {cores} cores")
    # no rule (`sgpose predict`): every core this process may use
    assert threads.resolve_threads(None, None, None) == (len(os.sched_getaffinity(0)), "all cores of this machine")


@pytest.mark.parametrize("explicit, slurm, message", [(0, None, "--threads 0"), (None, "two", "SLURM_CPUS_PER_TASK='two'")])
def test_bad_counts_are_clear_errors(monkeypatch, explicit, slurm, message):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", slurm or "")
    with pytest.raises(ValueError, match=message):
        threads.resolve_threads(explicit, "cache")


def _configured(env: dict, explicit: int | None, world: int | None = None) -> list[int]:
    """torch intra-op, torch inter-op and OpenCV threads in a fresh process after configure_threads."""
    code = ("import cv2, torch; from sgpose.runtime import threads; "
            f"threads.configure_threads({explicit}, 'train_refiner'); "
            "print(torch.get_num_threads(), torch.get_num_interop_threads(), cv2.getNumThreads(), threads.loader_workers(8))")
    env = {**os.environ, **env} | ({"WORLD_SIZE": str(world)} if world else {})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


def test_torch_and_opencv_report_the_configured_count():
    assert _configured({"SLURM_CPUS_PER_TASK": "1"}, None) == [1, 1, 1, 0]  # one core: no worker process
    assert _configured({"SLURM_CPUS_PER_TASK": "1"}, 3) == [3, 3, 3, 2]
    assert _configured({"SLURM_CPUS_PER_TASK": "4"}, None, world=2) == [2, 2, 2, 1]  # each DDP process its share


def test_a_stage_that_never_imports_torch_does_not_load_it_and_a_later_import_gets_the_count():
    """evaluate, prepare, download: no torch import for the thread set-up; torch (or OpenCV) imported
    afterwards starts with the stage's count (OMP_NUM_THREADS)."""
    code = ("import sys; from sgpose.runtime import threads; threads.configure_threads(1, 'evaluate'); "
            "print('torch' in sys.modules, 'cv2' in sys.modules); import torch; print(torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in threads.THREAD_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "1"]  # (an env count above the cores is capped by torch)


def test_the_cli_logs_the_count_and_rejects_a_bad_one(tmp_path):
    write_params(tmp_path, params_tree())
    env = {**os.environ, "SLURM_CPUS_PER_TASK": "2", "PYTHONPATH": str(ROOT / "pipeline_src")}
    run = lambda *extra: subprocess.run([sys.executable, "-m", "sgpose.cli", "evaluate", "--variant", "ours", *extra], cwd=tmp_path,
                                        env=env, capture_output=True, text=True)
    proc = run()  # no predictions yet: fails after the threads are set
    assert "sgpose evaluate: 2 threads (from SLURM_CPUS_PER_TASK)" in proc.stderr
    proc = run("--threads", "0")
    assert proc.returncode == 1 and "sgpose evaluate: error: --threads 0: must be at least 1" in proc.stderr


@pytest.mark.parametrize("argv, rule", [
    (["cache", "--split", "train"], "cache"),  # DVC's job: a split, every shard
    (["cache", "--split", "train", "--shard", "0"], "cache_shard"),  # Snakemake's scatter job
    (["cache", "--split", "train", "--gather"], "cache_gather"),
    (["prepare", "--split", "val_det"], "prepare_detections"),
    (["prepare", "--split", "train", "--split", "val"], "prepare"),
])
def test_a_command_takes_the_threads_of_the_rule_it_runs(tmp_path, argv, rule):
    """The thread count is looked up by the rule an invocation runs (DVC's `sgpose cache` is rule cache,
    Snakemake's `--shard` cache_shard), never by the command's name alone."""
    from sgpose.dag.table import rule_names

    write_params(tmp_path, params_tree() | {"resources": {r: {"threads": 1} for r in rule_names()}})
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CPUS_PER_TASK"} | {"PYTHONPATH": str(ROOT / "pipeline_src")}
    proc = subprocess.run([sys.executable, "-m", "sgpose.cli", *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert f"sgpose {argv[0]}: 1 thread (from resources.{rule}.threads)" in proc.stderr, proc.stderr[-2000:]
