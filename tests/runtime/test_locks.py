"""`locks`: per-output flock locks under results/.locks, held across processes, released on death."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sgpose.runtime import locks

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from sgpose.runtime import locks
with locks.output_lock(sys.argv[1], sys.argv[2], wait=False):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(output: Path, results: Path) -> subprocess.Popen:
    """Another process holding the lock of `output` (it says `held` once it does)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline_src")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(output), str(results)], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_lock_lives_outside_the_outputs_under_results(tmp_path):
    results = tmp_path / "results"
    assert locks.lock_file(results / "fx/tiny/cache/train.shards/shard-00000.h5", results) == \
        results / ".locks/fx/tiny/cache/train.shards/shard-00000.h5.lock"


def test_a_second_process_is_refused_with_the_holder_named_and_a_killed_holder_frees_it(tmp_path):
    results, out = tmp_path / "results", tmp_path / "results/fx/tiny/backbone.pt"
    proc = _holder(out, results)
    try:
        assert locks.is_held(out, results)
        with pytest.raises(locks.OutputLocked, match=rf"backbone.pt: another process is writing it \(pid {proc.pid} on "):
            with locks.output_lock(out, results, wait=False):
                pass
    finally:
        proc.kill()  # kill -9: the kernel drops its lock
        proc.wait()
    assert not locks.is_held(out, results)
    with locks.output_lock(out, results, wait=False) as lock:
        assert f"pid {os.getpid()} on " in lock.read_text()


def test_only_a_live_writers_temporary_is_live(tmp_path):
    results = tmp_path / "results"
    shard = results / "c/train.shards/shard-00001.h5"
    tmp = shard.with_name("shard-00001.h5.tmp-12345")
    proc = _holder(shard, results)
    try:
        assert locks.live_temporary(tmp, results)
        assert not locks.live_temporary(shard.with_name("shard-00002.h5.tmp-12345"), results)
        assert not locks.live_temporary(shard, results)  # not a temporary
    finally:
        proc.kill()
        proc.wait()
    assert not locks.live_temporary(tmp, results)  # its writer died: a stray
