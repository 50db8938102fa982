"""Atomic writes: a killed writer's temporary never outlives the next write of the same file. JSON holds
finite numbers only: a NaN or infinity is refused on writing (nothing written) and on reading."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from sgpose.core.errors import NonFiniteError
from sgpose.core.io import TMP_MARK, atomic_path, read_json, write_json


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


def test_json_with_a_non_finite_number_is_not_written_and_names_where_it_is(tmp_path):
    """A diverged refiner's predictions: `[{"keypoints": [x, NaN, ...]}]` must never become a file."""
    results = [{"image_id": 1, "keypoints": [1.0, 2.0, 2.0] * 2, "score": 0.9},
               {"image_id": 2, "keypoints": [1.0, math.nan, 2.0, 3.0, -math.inf, 1.0], "score": 0.8}]
    path = tmp_path / "predictions" / "val.json"
    with pytest.raises(NonFiniteError) as err:
        write_json(path, results, indent=None)
    assert str(err.value) == (f"{path}: not written: it would hold nan at [1].keypoints[1] (2 non-finite numbers); "
                              "the numbers it was computed from are not finite (a diverged training?): rerun the "
                              "stage that made them")
    assert list(tmp_path.rglob("*")) == []  # no file, no temporary
    write_json(path, results[:1])
    assert read_json(path) == results[:1]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_json_holding_nan_is_refused_on_reading(tmp_path, token):
    """Files written before sgpose refused them (Python's json writes NaN): evaluate must not score them."""
    path = tmp_path / "val.json"
    path.write_text(json.dumps([{"keypoints": [1.0, 2.0]}]).replace("2.0", token))
    with pytest.raises(NonFiniteError, match=rf"val\.json: holds {token}, a non-finite number"):
        read_json(path)
