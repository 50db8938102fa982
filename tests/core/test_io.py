"""Atomic writes: a killed writer's temporary never outlives the next write of the same file."""

from __future__ import annotations

import subprocess
import sys

from sgpose.core.io import TMP_MARK, atomic_path, write_json


def test_a_killed_writers_temporary_is_removed_by_the_next_write_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "refiner.pt.last"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{target.name}{TMP_MARK}{int(dead.stdout)}"  # that process has exited
    stale.write_bytes(b"half written")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f"{target.name}{TMP_MARK}{live.pid}"
        busy.write_bytes(b"being written")
        other = tmp_path / f"other.json{TMP_MARK}{int(dead.stdout)}"  # another file's: not ours to judge
        other.write_bytes(b"x")
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"done")
        assert target.read_bytes() == b"done"
        assert not stale.exists() and busy.exists() and other.exists()
    finally:
        live.kill()
        live.wait()
    write_json(tmp_path / "other.json", {"a": 1})
    assert not other.exists()
