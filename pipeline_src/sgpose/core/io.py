"""Files: atomic outputs (every file a stage writes appears complete or not at all), JSON, checksums.

Write to `<name>.tmp-<pid>` beside the target and rename on success (rename is atomic on one
filesystem), so an interrupted stage never leaves a file that looks finished. A write that runs out
of space is a DiskFullError saying where and how much is free, and leaves nothing behind. JSON holds
finite numbers only, both ways: a NaN or infinity (a diverged refiner's predictions, their scores) is a
NonFiniteError naming the file and where the number is, and nothing is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

from sgpose.core.errors import NonFiniteError, disk_full

TMP_MARK = ".tmp-"  # a temporary's name: <name>.tmp-<pid> (sgpose.runtime.locks tells a live writer's from a stray)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_dead_temporaries(path: Path) -> list[Path]:
    """Delete `path`'s temporaries left by writers that no longer run on this host (a kill -9 mid-write);
    a live writer's temporary is kept. Returns what was removed."""
    removed = []
    for tmp in path.parent.glob(f"{path.name}{TMP_MARK}*"):
        pid = tmp.name.rsplit(TMP_MARK, 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` only if the block completes. Temporaries of
    the same file left by a killed writer are removed first, so an interrupted run leaves none behind
    once it is re-run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # HDF5 and torch wrap ENOSPC in their own errors
        full = disk_full(err, tmp)  # measured while the half-written file still takes its space
        if full is not None and full is not err:
            raise full from err
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write JSON atomically; a non-finite number is refused (NonFiniteError), nothing written."""
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError:  # "Out of range float values are not JSON compliant"
        where = list(non_finite(obj))
        if not where:
            raise
        raise NonFiniteError(path, f"not written: it would hold {where[0][1]} at {where[0][0] or 'the top'} "
                             f"({len(where)} non-finite numbers); the numbers it was computed from are not finite "
                             "(a diverged training?): rerun the stage that made them") from None
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def non_finite(obj: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """(place, value) of every NaN or infinity in a JSON tree, places written `[3].keypoints[5]`."""
    if isinstance(obj, float) and not math.isfinite(obj):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from non_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from non_finite(value, f"{where}[{i}]")


def read_json(path: str | Path) -> Any:
    """Read JSON; errors name the file. NaN and Infinity (Python's json writes them, the standard has
    neither) are refused: a file holding them was made from numbers that were not finite."""
    path = Path(path)

    def refuse(token: str) -> float:
        raise NonFiniteError(path, f"holds {token}, a non-finite number (made by a diverged run?): delete it and "
                             "rerun the stage that writes it")

    try:
        return json.loads(path.read_text(), parse_constant=refuse)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found (has the stage that writes it run?)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest (sha256 or md5) of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    return file_digest(path, "sha256")
