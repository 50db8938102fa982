"""Two writers of one cache (issue 16): `sgpose cache` processes at once both finish; a live writer's
temporary file is never removed as a stray; a waiting process names the holder; training refuses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fixture_instances, params_tree, write_instances, write_params
from sgpose.cache.reader import load_cache
from sgpose.cli import main as cli
from sgpose.runtime import locks

ROOT = Path(__file__).resolve().parents[2]
SHARDS = Path("results/fx/tiny/cache/train.shards")
RESULTS = Path("results")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A 0-epoch backbone over 7 training crops (2 shards) and 5 val crops; cwd is the project."""
    monkeypatch.chdir(tmp_path)
    params = write_params(tmp_path, params_tree(train_backbone={"epochs": 0},
                                                cache={"batch_size": 4, "shards": {"train": 2}}))
    table = fixture_instances((64, 64))
    write_instances(tmp_path, "fx", train=table.iloc[:7], val=table.iloc[7:])
    assert cli(["train_backbone", "--params", str(params)]) == 0
    return params


def _sgpose(*args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline_src")}
    return subprocess.Popen([sys.executable, "-m", "sgpose.cli", *args, "--threads", "1"], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=stderr)


def test_two_caches_at_once_both_finish(project):
    procs = [_sgpose("cache", "--params", str(project)) for _ in range(2)]
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert not any("Errno" in e for e in errs)
    assert len(load_cache(Path("results/fx/tiny/cache/train.h5"))["heatmaps"]) == 7
    assert sorted(p.name for p in SHARDS.iterdir()) == ["shard-00000.h5", "shard-00001.h5"]  # nothing else left


def test_a_live_writers_temporary_is_not_a_stray(project):
    assert cli(["cache", "--params", str(project)]) == 0
    live = SHARDS / f"shard-00001.h5.tmp-{os.getpid()}"
    with locks.output_lock(SHARDS / "shard-00001.h5", RESULTS, wait=False):  # this process: a live writer
        live.write_bytes(b"being written")
        gather = _sgpose("cache", "--params", str(project), "--split", "train", "--gather")
        assert gather.wait() == 0, gather.stderr.read()
        assert live.read_bytes() == b"being written"
    gather = _sgpose("cache", "--params", str(project), "--split", "train", "--gather")
    assert gather.wait() == 0 and f"removed stray {live}" in gather.stderr.read()  # its writer is gone: a stray
    assert not live.exists()


def test_a_second_writer_waits_naming_the_holder(project, tmp_path):
    assert cli(["cache", "--params", str(project)]) == 0
    (SHARDS / "shard-00000.h5").unlink()
    log = tmp_path / "waiter.log"
    with locks.output_lock(SHARDS / "shard-00000.h5", RESULTS, wait=False), log.open("w") as err:
        waiter = _sgpose("cache", "--params", str(project), "--split", "train", "--shard", "0", stderr=err)
        deadline = time.monotonic() + 120
        while "waiting for another process" not in log.read_text() and waiter.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert f"shard-00000.h5: waiting for another process writing it (pid {os.getpid()} on " in log.read_text()
        assert waiter.poll() is None  # still waiting while the lock is held
    assert waiter.wait() == 0, log.read_text()
    assert "wrote results/fx/tiny/cache/train.shards/shard-00000.h5" in log.read_text()


@pytest.mark.parametrize("stage, output", [("train_backbone", "fx/tiny/backbone.pt")])
def test_a_second_trainer_stops_naming_the_holder(project, capsys, stage, output):
    with locks.output_lock(RESULTS / output, RESULTS, wait=False):
        assert cli([stage, "--params", str(project)]) == 1
    err = capsys.readouterr().err
    assert f"sgpose {stage}: error: results/{output}: another process is writing it (pid {os.getpid()} on " in err
