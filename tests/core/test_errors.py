"""A full disk, for real: a small tmpfs as the results root. Writing a checkpoint (torch) or the cache
(HDF5) there is one line saying what ran out and where (the full filesystem's mount point, also behind a
symbolic link; exit 2, no segfault), leaves nothing half-written under a final or temporary name, and
the rerun after freeing space finishes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sgpose.cache.reader import load_cache
from sgpose.cli import main as cli
from sgpose.core.errors import DiskFullError, InputError, disk_full, mount_point, reading
from sgpose.core.io import atomic_path

sys.path.insert(0, str(Path(__file__).parents[1] / "stages"))
from test_cache_stage import tiny_project  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that size under tmp_path; unmounted afterwards."""
    mounted = []

    def mount(size: str) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs to fill up (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path, leave: int) -> Path:
    """A file taking all but `leave` bytes of the filesystem of `where`."""
    filler = where / "filler"
    free = os.statvfs(where).f_bavail * os.statvfs(where).f_frsize
    with filler.open("wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(free - leave, 1))
    return filler


def test_a_checkpoint_on_a_full_disk_is_a_disk_full_error(tmpfs):
    where = tmpfs("1m")
    with pytest.raises(DiskFullError) as err:
        with atomic_path(where / "w.pt") as tmp:
            torch.save({"w": torch.zeros(1 << 20)}, tmp)  # 4 MiB
    assert re.fullmatch(rf"disk full writing {where}/w\.pt\.tmp-\d+: \d+ bytes free on {where}", str(err.value))
    assert err.value.free < 1 << 20 and list(where.iterdir()) == []


def test_a_full_disk_behind_a_symlink_names_the_filesystem_that_is_full(tmpfs, tmp_path):
    """results/ a symbolic link onto another filesystem (the one that fills up): the message names that
    filesystem's mount point, not `/` (or whatever holds the link)."""
    where = tmpfs("1m")
    (where / "results").mkdir()
    (tmp_path / "project").mkdir()
    link = tmp_path / "project" / "results"
    link.symlink_to(where / "results")
    assert mount_point(link / "fx" / "w.pt") == where.resolve() != mount_point(tmp_path)
    with pytest.raises(DiskFullError) as err:
        with atomic_path(link / "w.pt") as tmp:
            torch.save({"w": torch.zeros(1 << 20)}, tmp)  # 4 MiB
    assert re.fullmatch(rf"disk full writing {link}/w\.pt\.tmp-\d+: \d+ bytes free on {where.resolve()}", str(err.value))
    assert list((where / "results").iterdir()) == []


def test_other_write_errors_are_not_called_a_full_disk(tmp_path):
    assert disk_full(RuntimeError("enforce fail at inline_container.cc: file write failed"), tmp_path) is None
    assert disk_full(ValueError("no space left on device"), tmp_path) is not None  # HDF5 quotes the errno text
    with pytest.raises(InputError, match=r"x\.h5: damaged cache \(truncated file\)"):
        with reading(tmp_path / "x.h5", "cache"):
            raise OSError("truncated file")


def test_the_cache_stage_on_a_full_disk_says_so_and_resumes(tmpfs, monkeypatch):
    root = tmpfs("64m")
    monkeypatch.chdir(root)
    params_file, _ = tiny_project(root)
    assert cli(["train_backbone", "--params", str(params_file)]) == 0  # 44 MB
    filler = fill(root, leave=50_000)
    env = os.environ | {"PYTHONPATH": str(REPO / "pipeline_src")}
    run = lambda: subprocess.run([sys.executable, "-m", "sgpose.cli", "cache", "--params", str(params_file)],  # noqa: E731
                                 cwd=root, env=env, capture_output=True, text=True)
    done = run()
    assert done.returncode == 2, done.stderr[-3000:]  # not 139 (segfault), not a traceback
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.fullmatch(rf"sgpose cache: error: disk full writing results/fx/tiny/cache/train\.shards/shard-00000\.h5"
                        rf"\.tmp-\d+: \d+ bytes free on {root}", errors[0])
    assert [p for p in (root / "results").rglob("*") if p.suffix == ".h5" or ".tmp-" in p.name] == []
    filler.unlink()
    done = run()
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(load_cache(root / "results/fx/tiny/cache/val.h5")["heatmaps"]) == 5
